"""The brand watchlist: one YAML file of brands, their owners and the receivers that reach them.

Loading checks every field and reports every problem with the file, line, column and the
field path (`config/watchlist.yaml:12:9: brands[0].owners[1].receivers: unknown receiver`).
Matching finds which brands a post mentions: it ignores accents and case ("Société
Générale" = "societe generale" = "#SocieteGenerale"), respects word boundaries, knows
@handles and #hashtags, honours exclusions ("apple pie"), and may return several brands.
The format is documented in the README; config/watchlist.yaml is a working example.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from models.text import without_combining
from pipeline.records import SEVERITIES
from pipeline.spelling import did_you_mean

RECEIVER_TYPES = ("slack", "email", "webhook", "pagerduty")
_BRAND_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
# Words, #hashtags and @handles (handles may hold dots: @acme.bsky.social).
_TOKEN = re.compile(r"@[\w.-]*\w|#\w+|\w+")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a configuration file, where an editor can jump to it."""

    path: Path
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = str(self.path)
        if self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
        return f"{where}: {self.field}: {self.message}" if self.field \
            else f"{where}: {self.message}"


class WatchlistError(ValueError):
    """A watchlist that cannot be used: every problem found, each with file, line, column.

    `line`, `column`, `field` and `message` are the first problem's; `problems` lists all
    of them (one per line in the message), so a user fixes the file in one pass.
    """

    def __init__(self, path: Path | str, line: int | None, field: str, message: str,
                 column: int | None = None, problems: list[Problem] | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.column = column
        self.field = field
        self.message = message
        self.problems = problems or [Problem(self.path, line, column, field, message)]
        super().__init__("\n".join(str(problem) for problem in self.problems))

    @classmethod
    def of(cls, problems: list[Problem]) -> WatchlistError:
        first = problems[0]
        return cls(first.path, first.line, first.field, first.message, first.column,
                   list(problems))


@dataclass(frozen=True)
class Owner:
    name: str
    receivers: tuple[str, ...]
    min_severity: str = "warning"
    # IANA time zone in which these people read times (email), overriding the brand's.
    timezone: str | None = None

    def wants(self, severity: str) -> bool:
        return SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)


@dataclass(frozen=True)
class ReceiverSpec:
    name: str
    type: str
    options: dict[str, Any]
    line: int
    path: Path
    # Where each option's key is written, so an error points at the option, not the receiver.
    option_marks: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)

    def mark_of(self, option: str) -> tuple[int | None, int | None]:
        return self.option_marks.get(option, (self.line or None, None))

    def error(self, option: str, message: str) -> WatchlistError:
        """An error about one of this receiver's options, for the notifier's own checks."""
        line, column = self.mark_of(option)
        return WatchlistError(self.path, line, f"receivers.{self.name}.{option}", message,
                              column)


@dataclass(frozen=True)
class Brand:
    id: str
    name: str
    aliases: tuple[str, ...] = ()
    handles: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    owners: tuple[Owner, ...] = ()
    thresholds: dict[str, Any] = field(default_factory=dict)
    line: int = 0
    # IANA time zone in which the brand's people read times (email alerts); Slack shows
    # each reader's own zone.
    timezone: str = "UTC"

    def timezone_for(self, receiver: str) -> str:
        """The time zone of the people a receiver reaches for this brand: the first owner
        listing it that names one, else the brand's."""
        return next((owner.timezone for owner in self.owners
                     if owner.timezone and receiver in owner.receivers), self.timezone)

    def reads(self, language: str) -> bool:
        """Whether a post in `language` is the brand's concern: any language when the brand
        lists none, and a post of unknown language ("und") always, rather than lose it."""
        return not self.languages or language == "und" or language in self.languages


def fold(text: str) -> str:
    """Case- and accent-insensitive form used on both sides of a match: the text's NFKD
    form without its combining characters (those of a non-zero combining class), casefolded.

    Every post of the firehose is folded: an ASCII text is its own NFKD form and holds no
    combining character (bench/validate_stage.py); `without_combining` is the fast removal.
    """
    if text.isascii():
        return text.casefold()
    return without_combining(unicodedata.normalize("NFKD", text)).casefold()


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(fold(text))


# -- YAML with line and column numbers -----------------------------------------------------

Mark = tuple[int | None, int | None]  # (line, column), both counted from 1


class _Mapping(dict):
    mark: Mark = (None, None)
    key_marks: dict[str, Mark]


class _Sequence(list):
    mark: Mark = (None, None)
    item_marks: list[Mark]


class _LineLoader(yaml.SafeLoader):
    pass


def _mark(node: yaml.Node) -> Mark:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Mapping:
    seen: dict[Any, Mark] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key][0]})",
                key_node.start_mark,
            )
        seen[key] = _mark(key_node)
    mapping = _Mapping(loader.construct_mapping(node, deep=True))
    mapping.mark = _mark(node)
    mapping.key_marks = {str(k): mark for k, mark in seen.items()}
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> _Sequence:
    sequence = _Sequence(loader.construct_sequence(node, deep=True))
    sequence.mark = _mark(node)
    sequence.item_marks = [_mark(item) for item in node.value]
    return sequence


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)

# PyYAML notices some mistakes only on the next token: a key without its ':' is reported
# where the next line starts, an unclosed quote or bracket at the end of the file. Its
# "context" then marks where the faulty key, string or list began: the place to fix.
_CONTEXTS_TO_BLAME = ("while scanning a", "while parsing a flow")


def yaml_problem(path: Path, exc: yaml.YAMLError) -> Problem:
    """A YAML syntax error at the line and column the user must fix."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return Problem(path, None, None, "", f"invalid YAML: {exc}")
    problem, context = exc.problem_mark, exc.context_mark
    message = f"invalid YAML: {exc.problem}"
    blame = problem
    if context is not None and (exc.context or "").startswith(_CONTEXTS_TO_BLAME) \
            and (context.line, context.column) < (problem.line, problem.column):
        blame = context
        message += (f" ({exc.context} that starts here; noticed at line {problem.line + 1},"
                    f" column {problem.column + 1})")
    return Problem(path, blame.line + 1, blame.column + 1, "", message)


class _Reader:
    """Walks the parsed YAML and records every problem with its line and column; a reader
    goes on after a problem (skipping the bad part) so that all are reported at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def report(self, mark: Mark, field_path: str, message: str) -> None:
        self.problems.append(Problem(self.path, mark[0], mark[1], field_path, message))

    def mark_of(self, parent: Any, key: str | int) -> Mark:
        if isinstance(parent, _Mapping):
            return parent.key_marks.get(str(key), parent.mark)
        if isinstance(parent, _Sequence) and isinstance(key, int) and key < len(parent.item_marks):
            return parent.item_marks[key]
        return (None, None)

    def string(self, parent: dict, key: str, field_path: str, required: bool = True) -> str:
        value = parent.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            message = "is required" if value is None else "must be a non-empty string"
            self.report(self.mark_of(parent, key), field_path, message)
            return ""
        return value.strip()

    def strings(self, parent: dict, key: str, field_path: str) -> list[str]:
        value = parent.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.report(self.mark_of(parent, key), field_path, "must be a list of strings")
            return []
        good = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                mark = self.mark_of(value, index)
                self.report(mark if mark[0] else self.mark_of(parent, key),
                            f"{field_path}[{index}]", "must be a non-empty string")
            else:
                good.append(item.strip())
        return good

    def check_keys(self, mapping: dict, allowed: set[str], field_path: str) -> None:
        for key in mapping:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed) \
                    or f" (expected one of: {', '.join(sorted(allowed))})"
                self.report(self.mark_of(mapping, key), f"{field_path}.{key}".lstrip("."),
                            f"unknown key {str(key)!r}{hint}")


_BRAND_FIELDS = {"id", "name", "aliases", "handles", "hashtags", "exclude", "languages",
                 "owners", "thresholds", "timezone"}


@dataclass
class Watchlist:
    path: Path
    brands: dict[str, Brand]
    receivers: dict[str, ReceiverSpec]
    _index: dict[str, list[tuple[tuple[str, ...], str, str]]] = field(default_factory=dict)
    _exclusions: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._build_index()

    def _build_index(self) -> None:
        """First token -> [(phrase tokens, brand id, label)] so a post is matched in one pass."""
        self._index.clear()
        self._exclusions.clear()
        for brand in self.brands.values():
            phrases: dict[tuple[str, ...], str] = {}
            for name in (brand.name, *brand.aliases):
                words = tuple(t.lstrip("#@") for t in tokens(name))
                if words:
                    phrases.setdefault(words, fold(name))
                    # The name written as one hashtag: "Société Générale" -> #societegenerale.
                    phrases.setdefault(("#" + "".join(words),), "#" + "".join(words))
            for tag in brand.hashtags:
                folded = "#" + fold(tag).lstrip("#")
                phrases.setdefault((folded,), folded)
            for handle in brand.handles:
                folded = "@" + fold(handle).lstrip("@")
                phrases.setdefault((folded,), folded)
            for words, label in phrases.items():
                self._index.setdefault(words[0], []).append((words, brand.id, label))
            self._exclusions[brand.id] = [
                tuple(t.lstrip("#@") for t in tokens(phrase)) for phrase in brand.exclude
            ]

    def match(self, text: str) -> list[tuple[str, list[str]]]:
        """Brands mentioned in `text`, each with what matched, in watchlist order."""
        # Tokens keep their # or @: a name matches words, a hashtag or handle matches only
        # itself, so "@orange_fan" is not the brand Orange but "#Orange" is.
        words = tokens(text)
        if self._index.keys().isdisjoint(words):
            return []  # most posts: no word starts a watched name (one C loop tells)
        found: dict[str, list[tuple[int, int, str]]] = {}
        for position, word in enumerate(words):
            for phrase, brand_id, label in self._index.get(word, ()):
                end = position + len(phrase)
                if tuple(words[position:end]) == phrase:
                    found.setdefault(brand_id, []).append((position, end, label))
        results: list[tuple[str, list[str]]] = []
        for brand_id in self.brands:
            spans = found.get(brand_id)
            if not spans:
                continue
            excluded = self._excluded_positions(brand_id, words)
            labels = sorted({label for start, end, label in spans
                             if not excluded.intersection(range(start, end))})
            if labels:
                results.append((brand_id, labels))
        return results

    def _excluded_positions(self, brand_id: str, words: list[str]) -> set[int]:
        covered: set[int] = set()
        plain = [w.lstrip("#@") for w in words]
        for phrase in self._exclusions.get(brand_id, ()):
            size = len(phrase)
            for start in range(len(plain) - size + 1):
                if tuple(plain[start:start + size]) == phrase:
                    covered.update(range(start, start + size))
        return covered


def load_watchlist(path: Path | str) -> Watchlist:
    """The watchlist in `path`; WatchlistError lists every problem with its line and column."""
    watchlist, problems = inspect_watchlist(path)
    if problems or watchlist is None:
        raise WatchlistError.of(problems)
    return watchlist


def inspect_watchlist(path: Path | str) -> tuple[Watchlist | None, list[Problem]]:
    """Everything wrong with the file at `path`, and what could be read of it (None when
    the file cannot be read or parsed): what `vigie config check` reports."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Problem(path, None, None, "", "file not found")]
    except IsADirectoryError:
        return None, [Problem(path, None, None, "", "is a folder, not a file")]
    except UnicodeDecodeError as exc:
        return None, [Problem(path, None, None, "", f"not UTF-8 (byte {exc.start})")]
    except OSError as exc:
        return None, [Problem(path, None, None, "", f"cannot read: {exc.strerror}")]
    return _parse(text, path)


def parse_watchlist(text: str, path: Path | str = "<watchlist>") -> Watchlist:
    watchlist, problems = _parse(text, Path(path))
    if problems or watchlist is None:
        raise WatchlistError.of(problems)
    return watchlist


def _parse(text: str, path: Path) -> tuple[Watchlist | None, list[Problem]]:
    try:
        document = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        return None, [yaml_problem(path, exc)]
    reader = _Reader(path)
    if not isinstance(document, dict):
        reader.report((1, 1), "", "the file must hold a mapping with 'brands' (and 'receivers')")
        return None, reader.problems
    reader.check_keys(document, {"version", "receivers", "brands"}, "")
    version = document.get("version", 1)
    if version != 1:
        reader.report(reader.mark_of(document, "version"), "version", "only version 1 exists")
    receivers = _read_receivers(reader, document)
    brands = _read_brands(reader, document, receivers)
    return Watchlist(path=path, brands=brands, receivers=receivers), reader.problems


def _read_receivers(reader: _Reader, document: dict) -> dict[str, ReceiverSpec]:
    raw = document.get("receivers")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        reader.report(reader.mark_of(document, "receivers"), "receivers", "must be a mapping")
        return {}
    receivers: dict[str, ReceiverSpec] = {}
    for name, spec in raw.items():
        field_path = f"receivers.{name}"
        mark = reader.mark_of(raw, name)
        if not isinstance(spec, dict):
            reader.report(mark, field_path, "must be a mapping with a 'type'")
            continue
        kind = spec.get("type")
        if kind not in RECEIVER_TYPES:
            hint = did_you_mean(str(kind), RECEIVER_TYPES) if isinstance(kind, str) else ""
            reader.report(reader.mark_of(spec, "type"), f"{field_path}.type",
                          f"must be one of {', '.join(RECEIVER_TYPES)}{hint}")
            continue
        options = {k: v for k, v in spec.items() if k != "type"}
        marks = getattr(spec, "key_marks", {})
        receivers[str(name)] = ReceiverSpec(str(name), kind, options, mark[0] or 0, reader.path,
                                            {k: m for k, m in marks.items() if k != "type"})
    return receivers


def _read_brands(reader: _Reader, document: dict, receivers: dict) -> dict[str, Brand]:
    raw = document.get("brands")
    if not isinstance(raw, list) or not raw:
        reader.report(reader.mark_of(document, "brands"), "brands",
                      "required non-empty list of brands")
        return {}
    brands: dict[str, Brand] = {}
    for index, item in enumerate(raw):
        prefix = f"brands[{index}]"
        mark = reader.mark_of(raw, index)
        if not isinstance(item, dict):
            reader.report(mark, prefix, "must be a mapping")
            continue
        reader.check_keys(item, _BRAND_FIELDS, prefix)
        brand_id = reader.string(item, "id", f"{prefix}.id")
        if brand_id and not _BRAND_ID.match(brand_id):
            reader.report(reader.mark_of(item, "id"), f"{prefix}.id",
                          "lowercase letters, digits, '-' and '_' only")
        elif brand_id in brands:
            reader.report(reader.mark_of(item, "id"), f"{prefix}.id",
                          f"duplicate brand id {brand_id!r}")
        name = reader.string(item, "name", f"{prefix}.name")
        languages = reader.strings(item, "languages", f"{prefix}.languages")
        for position, code in enumerate(languages):
            if not _LANGUAGE.match(code):
                reader.report(reader.mark_of(item, "languages"),
                              f"{prefix}.languages[{position}]",
                              "must be an ISO 639 code such as 'fr'")
        thresholds = item.get("thresholds") or {}
        if not isinstance(thresholds, dict):
            reader.report(reader.mark_of(item, "thresholds"), f"{prefix}.thresholds",
                          "must be a mapping")
            thresholds = {}
        _check_thresholds(reader, thresholds, f"{prefix}.thresholds")
        timezone = _read_timezone(reader, item, prefix) or "UTC"
        brand = Brand(
            id=brand_id,
            name=name,
            aliases=tuple(reader.strings(item, "aliases", f"{prefix}.aliases")),
            handles=tuple("@" + h.lstrip("@")
                          for h in reader.strings(item, "handles", f"{prefix}.handles")),
            hashtags=tuple("#" + h.lstrip("#")
                           for h in reader.strings(item, "hashtags", f"{prefix}.hashtags")),
            exclude=tuple(reader.strings(item, "exclude", f"{prefix}.exclude")),
            languages=tuple(languages),
            owners=_read_owners(reader, item, prefix, receivers),
            thresholds=dict(thresholds),
            line=mark[0] or 0,
            timezone=timezone,
        )
        if brand_id and brand_id not in brands:
            brands[brand_id] = brand
    return brands


def _read_timezone(reader: _Reader, item: dict, prefix: str) -> str | None:
    """`item`'s `timezone` (a brand's or an owner's), None when absent or unknown (then
    reported)."""
    timezone = reader.string(item, "timezone", f"{prefix}.timezone", required=False)
    if not timezone:
        return None
    if not _known_timezone(timezone):
        reader.report(reader.mark_of(item, "timezone"), f"{prefix}.timezone",
                      f"unknown time zone {timezone!r} (an IANA name such as "
                      "'Europe/Paris')")
        return None
    return timezone


def _known_timezone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _check_thresholds(reader: _Reader, thresholds: dict, field_path: str) -> None:
    """The detector's own check, so that a typo fails at load time with its line."""
    from models.detection import DetectorConfig
    from models.detection.config import OVERRIDABLE_KEYS

    for key, value in thresholds.items():
        if key not in OVERRIDABLE_KEYS:
            reader.report(reader.mark_of(thresholds, key), f"{field_path}.{key}",
                          f"unknown threshold {str(key)!r}"
                          + (did_you_mean(str(key), OVERRIDABLE_KEYS)
                             or f" (allowed: {', '.join(OVERRIDABLE_KEYS)})"))
            continue
        try:
            DetectorConfig().with_overrides({key: value})
        except ValueError as exc:
            reader.report(reader.mark_of(thresholds, key), f"{field_path}.{key}", str(exc))


def _read_owners(reader: _Reader, item: dict, prefix: str, receivers: dict) -> tuple[Owner, ...]:
    raw = item.get("owners")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        reader.report(reader.mark_of(item, "owners"), f"{prefix}.owners", "must be a list")
        return ()
    owners = []
    for index, owner in enumerate(raw):
        field_path = f"{prefix}.owners[{index}]"
        if not isinstance(owner, dict):
            reader.report(reader.mark_of(raw, index), field_path, "must be a mapping")
            continue
        reader.check_keys(owner, {"name", "receivers", "min_severity", "timezone"},
                          field_path)
        names = reader.strings(owner, "receivers", f"{field_path}.receivers")
        for name in names:
            if name not in receivers:
                reader.report(reader.mark_of(owner, "receivers"), f"{field_path}.receivers",
                              f"unknown receiver {name!r}" + did_you_mean(name, receivers))
        severity = owner.get("min_severity", "warning")
        if severity not in SEVERITIES:
            reader.report(reader.mark_of(owner, "min_severity"), f"{field_path}.min_severity",
                          f"must be one of {', '.join(SEVERITIES)}")
            severity = "warning"
        owners.append(Owner(reader.string(owner, "name", f"{field_path}.name"),
                            tuple(names), severity, _read_timezone(reader, owner, field_path)))
    return tuple(owners)
