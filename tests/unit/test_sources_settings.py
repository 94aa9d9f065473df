"""Source settings from the environment, and what the watchlist becomes for each platform."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import SettingError
from pipeline.sources.base import RunnerSettings
from pipeline.sources.bluesky import BlueskySettings
from pipeline.sources.mastodon import MastodonSettings, StreamSpec, parse_streams
from pipeline.sources.push import PushSettings
from pipeline.sources.reddit import RedditSettings
from pipeline.sources.rss import RssSettings
from pipeline.sources.search_terms import BrandTerms, brand_terms, reddit_query, x_rules
from pipeline.sources.twitter import XSettings
from pipeline.watchlist import parse_watchlist

WATCHLIST = """\
version: 1
receivers:
  hook: {type: webhook, url: "http://127.0.0.1:9/hook"}
brands:
  - id: acme
    name: ACME
    aliases: [Acme Corp, "ACME Inc."]
    handles: ["@acme"]
    hashtags: ["#acme", "acmeleaks"]
    exclude: ["acme pie"]
    owners:
      - {name: PR, receivers: [hook], min_severity: warning}
  - id: lumio
    name: Lumio
    owners:
      - {name: PR, receivers: [hook], min_severity: warning}
"""


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("VIGIE_")]:
        monkeypatch.delenv(name)
    assert BlueskySettings.from_env().url == "wss://jetstream2.us-east.bsky.network/subscribe"
    assert MastodonSettings.from_env().streams == (StreamSpec("public"),)
    assert XSettings.from_env().api_url == "https://api.x.com"
    assert RedditSettings.from_env().api_url == "https://oauth.reddit.com"
    assert RssSettings.from_env().max_bytes == 5_000_000
    assert PushSettings.from_env().port == 8787
    assert RunnerSettings.from_env().state_dir.parts[-2:] == (".state", "sources")


def test_settings_read_the_environment_and_hide_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("file-token-123\n")
    monkeypatch.setenv("VIGIE_MASTODON_URL", "http://127.0.0.1:3000/")
    monkeypatch.setenv("VIGIE_MASTODON_TOKEN_FILE", str(secret_file))
    monkeypatch.setenv("VIGIE_MASTODON_STREAMS", "#acme, list:42, public:local")
    monkeypatch.setenv("VIGIE_REDDIT_SUBREDDITS", "r/france, europe")
    monkeypatch.setenv("VIGIE_REDDIT_CLIENT_SECRET", "reddit-secret-456")
    monkeypatch.setenv("VIGIE_X_BEARER_TOKEN", "bearer-789")
    monkeypatch.setenv("VIGIE_X_BACKFILL_MINUTES", "9")
    monkeypatch.setenv("VIGIE_STATE_DIR", str(tmp_path / "st"))
    mastodon = MastodonSettings.from_env()
    assert mastodon.url == "http://127.0.0.1:3000"
    assert mastodon.token.reveal() == "file-token-123"
    assert [s.label for s in mastodon.streams] == ["hashtag:acme", "list:42", "public:local"]
    reddit = RedditSettings.from_env()
    assert reddit.subreddits == ("france", "europe")
    x = XSettings.from_env()
    assert x.backfill_minutes == 5  # X allows at most 5 minutes
    assert RunnerSettings.from_env().state_dir == tmp_path / "st" / "sources"
    shown = repr(mastodon) + repr(reddit) + repr(x)
    for secret in ("file-token-123", "reddit-secret-456", "bearer-789"):
        assert secret not in shown


def test_bad_stream_names_are_explained() -> None:
    with pytest.raises(SettingError, match="unknown stream 'home'"):
        parse_streams("home")
    with pytest.raises(SettingError, match="needs a name"):
        parse_streams("hashtag:")


def test_watchlist_terms_rules_and_queries() -> None:
    terms = brand_terms(parse_watchlist(WATCHLIST))
    assert terms == [
        BrandTerms(
            "acme",
            ("ACME", "Acme Corp", "ACME Inc."),
            ("@acme",),
            ("#acme", "#acmeleaks"),
            ("acme pie",),
        ),
        BrandTerms("lumio", ("Lumio",)),
    ]
    assert x_rules(terms) == [
        (
            '("ACME" OR "Acme Corp" OR "ACME Inc." OR @acme OR #acme OR #acmeleaks) -"acme pie"',
            "vigie:acme",
        ),
        ('"Lumio"', "vigie:lumio"),
    ]
    assert reddit_query(terms) == ['"ACME" OR "Acme Corp" OR "ACME Inc." OR "acmeleaks" OR "Lumio"']
    assert reddit_query(terms, max_length=30) == [
        '"ACME" OR "Acme Corp"',
        '"ACME Inc." OR "acmeleaks"',
        '"Lumio"',
    ]
