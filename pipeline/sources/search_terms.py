"""What the watchlist means to a source: a text pre-filter and per-brand search terms.

Platforms that filter on their side (X rules, Mastodon hashtags, Reddit search) get the
terms; the others get `text_filter`, which asks the watchlist's own matcher, so a post
reaches Kafka only if the scorer would match it too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.sources.errors import FatalSourceError
from pipeline.sources.items import TextFilter

__all__ = ["BrandTerms", "brand_terms", "load_watch", "reddit_query", "x_rules"]


@dataclass(frozen=True)
class BrandTerms:
    brand_id: str
    phrases: tuple[str, ...]  # name and aliases
    handles: tuple[str, ...] = ()  # "@acme"
    hashtags: tuple[str, ...] = ()  # "#acme"
    exclude: tuple[str, ...] = ()


def _strings(values: Any) -> tuple[str, ...]:
    if not values:
        return ()
    return tuple(str(v).strip() for v in values if str(v).strip())


def brand_terms(watchlist: Any) -> list[BrandTerms]:
    """Terms of every brand of a `pipeline.watchlist.Watchlist`."""
    terms: list[BrandTerms] = []
    for brand_id, brand in sorted(watchlist.brands.items()):
        phrases = _strings([getattr(brand, "name", "")] + list(getattr(brand, "aliases", ()) or ()))
        terms.append(
            BrandTerms(
                brand_id=brand_id,
                phrases=tuple(dict.fromkeys(phrases)),
                handles=tuple("@" + h.lstrip("@") for h in _strings(getattr(brand, "handles", ()))),
                hashtags=tuple(
                    "#" + h.lstrip("#") for h in _strings(getattr(brand, "hashtags", ()))
                ),
                exclude=_strings(getattr(brand, "exclude", ())),
            )
        )
    return terms


def load_watch(path: Path) -> tuple[TextFilter, list[BrandTerms]]:
    """Load the watchlist file once: the text filter and the brands' terms."""
    try:
        from pipeline.watchlist import WatchlistError, load_watchlist
    except ImportError as exc:  # pragma: no cover - the watchlist module ships with Vigie
        raise FatalSourceError(f"the watchlist module is not available: {exc}") from None
    if not path.exists():
        raise FatalSourceError(f"{path}: no watchlist; set VIGIE_WATCHLIST or run with --no-filter")
    try:
        watchlist = load_watchlist(path)
    except WatchlistError as exc:
        raise FatalSourceError(str(exc)) from None

    def matches(text: str) -> bool:
        return bool(watchlist.match(text))

    return matches, brand_terms(watchlist)


def _quote(term: str) -> str:
    return '"' + term.replace('"', "") + '"'


def x_rules(terms: Iterable[BrandTerms], max_length: int = 512) -> list[tuple[str, str]]:
    """X filtered-stream rules `(value, tag)`, one tag `vigie:<brand>` per brand, split in
    several rules when the terms do not fit in `max_length` characters (512 on the basic
    levels, 1024 on Pro)."""
    rules: list[tuple[str, str]] = []
    for brand in terms:
        atoms = [_quote(p) for p in brand.phrases] + list(brand.handles) + list(brand.hashtags)
        atoms = list(dict.fromkeys(atoms))
        if not atoms:
            continue
        suffix = "".join(f" -{_quote(e)}" for e in brand.exclude)
        tag = f"vigie:{brand.brand_id}"
        group: list[str] = []
        for atom in atoms:
            candidate = group + [atom]
            if group and len(_rule(candidate, suffix)) > max_length:
                rules.append((_rule(group, suffix), tag))
                group = [atom]
            else:
                group = candidate
        if len(_rule(group, suffix)) > max_length:
            raise FatalSourceError(
                f"brand {brand.brand_id}: the term {group[0]!r} with its exclusions does not fit"
                f" in an X rule of {max_length} characters"
            )
        rules.append((_rule(group, suffix), tag))
    return rules


def _rule(atoms: list[str], suffix: str) -> str:
    body = atoms[0] if len(atoms) == 1 else "(" + " OR ".join(atoms) + ")"
    return body + suffix


def reddit_query(terms: Iterable[BrandTerms], max_length: int = 512) -> list[str]:
    """Reddit search queries (`"ACME" OR "Acme Corp"`), split to stay under `max_length`."""
    atoms: list[str] = []
    for brand in terms:
        atoms.extend(_quote(p) for p in brand.phrases)
        atoms.extend(_quote(h.lstrip("#@")) for h in brand.hashtags)
    queries: list[str] = []
    current = ""
    folded: set[str] = set()
    unique = [a for a in atoms if not (a.lower() in folded or folded.add(a.lower()))]
    for atom in unique:
        candidate = f"{current} OR {atom}" if current else atom
        if current and len(candidate) > max_length:
            queries.append(current)
            current = atom
        else:
            current = candidate
    if current:
        queries.append(current)
    return queries
