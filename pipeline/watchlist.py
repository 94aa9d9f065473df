"""The brand watchlist: one YAML file of brands, their owners and the receivers that reach them.

Loading checks every field and reports the first problem with the file, the line and the
field path (`config/watchlist.yaml:12: brands[0].owners[1].receivers: unknown receiver`).
Matching finds which brands a post mentions: it ignores accents and case ("Société
Générale" = "societe generale" = "#SocieteGenerale"), respects word boundaries, knows
@handles and #hashtags, honours exclusions ("apple pie"), and may return several brands.
The format is documented in the README and in config/watchlist.example.yaml.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SEVERITIES = ("info", "warning", "critical")
RECEIVER_TYPES = ("slack", "email", "webhook", "pagerduty")
_BRAND_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
# Words, #hashtags and @handles (handles may hold dots: @acme.bsky.social).
_TOKEN = re.compile(r"@[\w.-]*\w|#\w+|\w+")


class WatchlistError(ValueError):
    """A watchlist that cannot be used; says where and what."""

    def __init__(self, path: Path | str, line: int | None, field: str, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.field = field
        self.message = message
        where = f"{self.path}:{line}" if line else str(self.path)
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


@dataclass(frozen=True)
class Owner:
    name: str
    receivers: tuple[str, ...]
    min_severity: str = "warning"

    def wants(self, severity: str) -> bool:
        return SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)


@dataclass(frozen=True)
class ReceiverSpec:
    name: str
    type: str
    options: dict[str, Any]
    line: int
    path: Path

    def error(self, option: str, message: str) -> WatchlistError:
        """An error about one of this receiver's options, for the notifier's own checks."""
        return WatchlistError(self.path, self.line, f"receivers.{self.name}.{option}", message)


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


def fold(text: str) -> str:
    """Case- and accent-insensitive form used on both sides of a match."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(fold(text))


# -- YAML with line numbers -----------------------------------------------------------------


class _Mapping(dict):
    line: int = 0
    key_lines: dict[str, int]


class _Sequence(list):
    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Mapping:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    mapping = _Mapping(loader.construct_mapping(node, deep=True))
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {str(k): line for k, line in seen.items()}
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> _Sequence:
    sequence = _Sequence(loader.construct_sequence(node, deep=True))
    sequence.line = node.start_mark.line + 1
    sequence.item_lines = [item.start_mark.line + 1 for item in node.value]
    return sequence


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class _Reader:
    """Walks the parsed YAML and turns each problem into a WatchlistError with its line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, line: int | None, field_path: str, message: str) -> WatchlistError:
        return WatchlistError(self.path, line, field_path, message)

    def line_of(self, parent: Any, key: str | int) -> int | None:
        if isinstance(parent, _Mapping):
            return parent.key_lines.get(str(key), parent.line)
        if isinstance(parent, _Sequence) and isinstance(key, int) and key < len(parent.item_lines):
            return parent.item_lines[key]
        return None

    def mapping(self, parent: Any, key: str | int, field_path: str, required: bool = True) -> Any:
        value = parent.get(key) if isinstance(parent, dict) else parent[key]
        if value is None and not required:
            return _Mapping()
        if not isinstance(value, dict):
            raise self.fail(self.line_of(parent, key), field_path, "must be a mapping")
        return value

    def string(self, parent: dict, key: str, field_path: str, required: bool = True) -> str:
        value = parent.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(self.line_of(parent, key), field_path, "required non-empty string")
        return value.strip()

    def strings(self, parent: dict, key: str, field_path: str) -> list[str]:
        value = parent.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(self.line_of(parent, key), field_path, "must be a list of strings")
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                line = self.line_of(value, index) or self.line_of(parent, key)
                raise self.fail(line, f"{field_path}[{index}]", "must be a non-empty string")
        return [item.strip() for item in value]

    def check_keys(self, mapping: dict, allowed: set[str], field_path: str) -> None:
        for key in mapping:
            if key not in allowed:
                raise self.fail(
                    self.line_of(mapping, key), f"{field_path}.{key}".lstrip("."),
                    f"unknown field (expected one of: {', '.join(sorted(allowed))})",
                )


_BRAND_FIELDS = {"id", "name", "aliases", "handles", "hashtags", "exclude", "languages",
                 "owners", "thresholds"}


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
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WatchlistError(path, None, "", "file not found") from None
    except UnicodeDecodeError as exc:
        raise WatchlistError(path, None, "", f"not UTF-8 (byte {exc.start})") from None
    return parse_watchlist(text, path)


def parse_watchlist(text: str, path: Path | str = "<watchlist>") -> Watchlist:
    path = Path(path)
    try:
        document = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise WatchlistError(path, line, "", f"invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise WatchlistError(path, None, "", f"invalid YAML: {exc}") from None
    reader = _Reader(path)
    if not isinstance(document, dict):
        raise reader.fail(1, "", "the file must hold a mapping with 'brands' (and 'receivers')")
    reader.check_keys(document, {"version", "receivers", "brands"}, "")
    version = document.get("version", 1)
    if version != 1:
        raise reader.fail(reader.line_of(document, "version"), "version", "only version 1 exists")
    receivers = _read_receivers(reader, document)
    brands = _read_brands(reader, document, receivers)
    return Watchlist(path=path, brands=brands, receivers=receivers)


def _read_receivers(reader: _Reader, document: dict) -> dict[str, ReceiverSpec]:
    raw = reader.mapping(document, "receivers", "receivers", required=False)
    receivers: dict[str, ReceiverSpec] = {}
    for name, spec in raw.items():
        field_path = f"receivers.{name}"
        line = reader.line_of(raw, name)
        if not isinstance(spec, dict):
            raise reader.fail(line, field_path, "must be a mapping with a 'type'")
        kind = spec.get("type")
        if kind not in RECEIVER_TYPES:
            raise reader.fail(
                reader.line_of(spec, "type"), f"{field_path}.type",
                f"must be one of {', '.join(RECEIVER_TYPES)}",
            )
        options = {k: v for k, v in spec.items() if k != "type"}
        receivers[str(name)] = ReceiverSpec(str(name), kind, options, line or 0, reader.path)
    return receivers


def _read_brands(reader: _Reader, document: dict, receivers: dict) -> dict[str, Brand]:
    raw = document.get("brands")
    if not isinstance(raw, list) or not raw:
        raise reader.fail(reader.line_of(document, "brands"), "brands",
                          "required non-empty list of brands")
    brands: dict[str, Brand] = {}
    for index, item in enumerate(raw):
        prefix = f"brands[{index}]"
        line = reader.line_of(raw, index)
        if not isinstance(item, dict):
            raise reader.fail(line, prefix, "must be a mapping")
        reader.check_keys(item, _BRAND_FIELDS, prefix)
        brand_id = reader.string(item, "id", f"{prefix}.id")
        if not _BRAND_ID.match(brand_id):
            raise reader.fail(reader.line_of(item, "id"), f"{prefix}.id",
                              "lowercase letters, digits, '-' and '_' only")
        if brand_id in brands:
            raise reader.fail(reader.line_of(item, "id"), f"{prefix}.id",
                              f"duplicate brand id {brand_id!r}")
        name = reader.string(item, "name", f"{prefix}.name")
        languages = reader.strings(item, "languages", f"{prefix}.languages")
        for position, code in enumerate(languages):
            if not _LANGUAGE.match(code):
                raise reader.fail(reader.line_of(item, "languages"),
                                  f"{prefix}.languages[{position}]",
                                  "must be an ISO 639 code such as 'fr'")
        thresholds = item.get("thresholds") or {}
        if not isinstance(thresholds, dict):
            raise reader.fail(reader.line_of(item, "thresholds"), f"{prefix}.thresholds",
                              "must be a mapping")
        _check_thresholds(reader, thresholds, f"{prefix}.thresholds")
        brands[brand_id] = Brand(
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
            line=line or 0,
        )
    return brands


def _check_thresholds(reader: _Reader, thresholds: dict, field_path: str) -> None:
    """The detector's own check, so that a typo fails at load time with its line."""
    from models.detection import DetectorConfig

    for key, value in thresholds.items():
        try:
            DetectorConfig().with_overrides({key: value})
        except ValueError as exc:
            raise reader.fail(reader.line_of(thresholds, key), f"{field_path}.{key}",
                              str(exc)) from None


def _read_owners(reader: _Reader, item: dict, prefix: str, receivers: dict) -> tuple[Owner, ...]:
    raw = item.get("owners")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise reader.fail(reader.line_of(item, "owners"), f"{prefix}.owners", "must be a list")
    owners = []
    for index, owner in enumerate(raw):
        field_path = f"{prefix}.owners[{index}]"
        if not isinstance(owner, dict):
            raise reader.fail(reader.line_of(raw, index), field_path, "must be a mapping")
        reader.check_keys(owner, {"name", "receivers", "min_severity"}, field_path)
        names = reader.strings(owner, "receivers", f"{field_path}.receivers")
        for name in names:
            if name not in receivers:
                raise reader.fail(reader.line_of(owner, "receivers"), f"{field_path}.receivers",
                                  f"unknown receiver {name!r}")
        severity = owner.get("min_severity", "warning")
        if severity not in SEVERITIES:
            raise reader.fail(reader.line_of(owner, "min_severity"),
                              f"{field_path}.min_severity",
                              f"must be one of {', '.join(SEVERITIES)}")
        owners.append(Owner(reader.string(owner, "name", f"{field_path}.name"),
                            tuple(names), severity))
    return tuple(owners)
