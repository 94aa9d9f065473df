from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.watchlist import Brand, WatchlistError, load_watchlist, parse_watchlist

ROOT = Path(__file__).resolve().parents[2]

BRANDS = """
version: 1
brands:
  - id: socgen
    name: Société Générale
    aliases: [SocGen]
  - id: orange
    name: Orange
    handles: ["@Orange_conseil"]
    exclude: [orange juice, jus d'orange, orange county]
  - id: apple
    name: Apple
    hashtags: ["#iPhone"]
    exclude: [apple pie, apple tree, big apple]
  - id: loreal
    name: L'Oréal
  - id: bnp
    name: BNP Paribas
    aliases: [BNP]
"""


@pytest.fixture(scope="module")
def watchlist():
    return parse_watchlist(BRANDS, "brands.yaml")


@pytest.mark.parametrize(
    ("text", "brands"),
    [
        # Accents and case do not matter, on either side.
        ("La Société Générale licencie", {"socgen"}),
        ("societe generale encore en panne", {"socgen"}),
        ("SOCIÉTÉ GÉNÉRALE", {"socgen"}),
        ("#SocieteGenerale c'est la honte", {"socgen"}),
        ("#sociétégénérale", {"socgen"}),
        ("Société and Générale are two words here", set()),
        # Word boundaries and exclusions.
        ("Orange coupe internet dans tout le quartier", {"orange"}),
        ("I love orange juice in the morning", set()),
        ("Un jus d'orange pressé", set()),
        ("Orange County traffic is bad", set()),
        ("orange juice is great but Orange support is awful", {"orange"}),
        ("Les oranges sont bonnes", set()),
        ("chez Orange, c'est l'horreur", {"orange"}),
        ("d'Orange", {"orange"}),
        # Handles and hashtags: exact, not prefixes.
        ("@Orange_conseil mon réseau ne marche plus", {"orange"}),
        ("@orange_conseil_fan hello", set()),
        ("Pineapple is not a brand", set()),
        ("apple pie recipe, best apple tree", set()),
        ("The new Apple store in the Big Apple", {"apple"}),
        ("mon #iPhone ne charge plus", {"apple"}),
        ("iPhone without the hash", set()),
        # Apostrophes and several brands in one post.
        ("L'Oréal et BNP Paribas dans la tourmente", {"loreal", "bnp"}),
        ("loreal", set()),
        ("Orange, SocGen et BNP: même combat", {"orange", "socgen", "bnp"}),
    ],
)
def test_matching_table(watchlist, text, brands):
    assert {brand for brand, _ in watchlist.match(text)} == brands


def test_match_says_what_matched(watchlist):
    assert watchlist.match("#SocieteGenerale et SocGen") == [
        ("socgen", ["#societegenerale", "socgen"])]


def test_the_shipped_watchlist_loads():
    watchlist = load_watchlist(ROOT / "config" / "watchlist.yaml")
    assert len(watchlist.brands) >= 3
    for brand in watchlist.brands.values():
        for owner in brand.owners:
            assert all(name in watchlist.receivers for name in owner.receivers)


def error_of(text: str) -> WatchlistError:
    with pytest.raises(WatchlistError) as caught:
        parse_watchlist(text, "conf/brands.yaml")
    return caught.value


def test_errors_name_file_line_and_field():
    error = error_of("""version: 1
receivers:
  mail: {type: email, to: [a@b.c]}
brands:
  - id: acme
    name: ACME
    owners:
      - name: PR
        receivers: [mail, slack-nope]
""")
    assert (error.line, error.field) == (9, "brands[0].owners[0].receivers")
    assert "unknown receiver 'slack-nope'" in str(error)
    assert str(error).startswith("conf/brands.yaml:9:9: ")


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("brands:\n  - id: Bad Id\n    name: x\n", 2, "brands[0].id"),
        ("brands:\n  - id: a\n", 2, "brands[0].name"),
        ("brands:\n  - id: a\n    name: A\n    colour: red\n", 4, "brands[0].colour"),
        ("brands:\n  - id: a\n    name: A\n  - id: a\n    name: B\n", 4, "brands[1].id"),
        ("brands:\n  - id: a\n    name: A\n    languages: [french]\n", 4,
         "brands[0].languages[0]"),
        ("receivers:\n  x: {type: fax}\nbrands:\n  - {id: a, name: A}\n", 2,
         "receivers.x.type"),
        ("brands:\n  - id: a\n    name: A\n    aliases: [ok, 3]\n", 4, "brands[0].aliases[1]"),
        ("brands: []\n", 1, "brands"),
        ("brands:\n  - id: a\n    name: A\n    thresholds:\n      min_negative: 3\n"
         "      sensitvity: 2\n", 6, "brands[0].thresholds.sensitvity"),
        ("brands:\n  - id: a\n    name: A\n    thresholds: {min_negative: lots}\n", 4,
         "brands[0].thresholds.min_negative"),
        ("brands:\n  - id: a\n    name: A\n    owners:\n      - {name: x, receivers: [],"
         " min_severity: panic}\n", 5, "brands[0].owners[0].min_severity"),
    ],
)
def test_each_bad_field_is_located(text, line, field):
    error = error_of(text)
    assert (error.line, error.field) == (line, field), str(error)


def test_yaml_syntax_and_duplicate_keys_are_located():
    # The list that is never closed starts on line 3, column 11: that is what to fix.
    unclosed = error_of("brands:\n  - id: a\n    name: [unclosed\n")
    assert (unclosed.line, unclosed.column) == (3, 11)
    duplicate = error_of("brands:\n  - id: a\n    name: A\n    name: B\n")
    assert duplicate.line == 4 and "duplicate key 'name'" in str(duplicate)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(WatchlistError, match="file not found"):
        load_watchlist(tmp_path / "nope.yaml")


def test_a_key_without_its_colon_is_reported_on_its_own_line_and_column():
    # PyYAML notices the missing ':' only on the next line; the user must fix this one.
    text = "brands:\n  - id: a\n    name ACME\n    aliases: [x]\n"
    error = error_of(text)
    assert (error.line, error.column) == (3, 5)
    assert str(error).startswith("conf/brands.yaml:3:5: invalid YAML: could not find "
                                 "expected ':'")


def test_every_problem_is_reported_at_once_with_suggestions():
    error = error_of("""version: 1
receivers:
  mail: {type: email, to: [a@b.c]}
brands:
  - id: acme
    nmae: ACME
    owners:
      - {name: PR, receivers: [mial], min_severty: warning}
  - id: Bad
    name: B
    thresholds: {sensitvity: 2}
""")
    assert [str(problem) for problem in error.problems] == [
        "conf/brands.yaml:6:5: brands[0].nmae: unknown key 'nmae', did you mean 'name'?",
        "conf/brands.yaml:5:5: brands[0].name: is required",
        "conf/brands.yaml:8:39: brands[0].owners[0].min_severty: unknown key 'min_severty', "
        "did you mean 'min_severity'?",
        "conf/brands.yaml:8:20: brands[0].owners[0].receivers: unknown receiver 'mial', "
        "did you mean 'mail'?",
        "conf/brands.yaml:9:5: brands[1].id: lowercase letters, digits, '-' and '_' only",
        "conf/brands.yaml:11:18: brands[1].thresholds.sensitvity: unknown threshold "
        "'sensitvity', did you mean 'sensitivity'?",
    ]


def test_a_brand_time_zone_is_an_iana_name():
    brands = parse_watchlist(
        "brands:\n  - {id: acme, name: ACME, timezone: Europe/Paris}\n"
        "  - {id: lumio, name: Lumio}\n").brands
    assert brands["acme"].timezone == "Europe/Paris" and brands["lumio"].timezone == "UTC"
    error = error_of("brands:\n  - {id: acme, name: ACME, timezone: Paris/France}\n")
    assert "brands[0].timezone" in str(error) and "unknown time zone 'Paris/France'" in str(error)


def test_a_brand_reads_its_languages_unknown_ones_and_all_when_it_lists_none() -> None:
    french = Brand(id="a", name="A", languages=("fr",))
    assert french.reads("fr") and french.reads("und")
    assert not french.reads("en")
    assert Brand(id="b", name="B").reads("en")


def test_an_owner_time_zone_overrides_the_brand_s_for_its_receivers():
    watchlist = parse_watchlist(
        "receivers:\n"
        "  paris-mail: {type: webhook, url: 'http://127.0.0.1:1/x'}\n"
        "  ny-mail: {type: webhook, url: 'http://127.0.0.1:1/y'}\n"
        "brands:\n"
        "  - id: acme\n    name: ACME\n    timezone: Europe/Paris\n    owners:\n"
        "      - {name: PR, receivers: [paris-mail]}\n"
        "      - {name: US desk, receivers: [ny-mail], timezone: America/New_York}\n")
    acme = watchlist.brands["acme"]
    assert acme.owners[1].timezone == "America/New_York" and acme.owners[0].timezone is None
    assert acme.timezone_for("ny-mail") == "America/New_York"
    assert acme.timezone_for("paris-mail") == "Europe/Paris"  # the brand's
    error = error_of(
        "receivers:\n  m: {type: webhook, url: 'http://127.0.0.1:1/x'}\n"
        "brands:\n  - id: acme\n    name: ACME\n    owners:\n"
        "      - {name: US, receivers: [m], timezone: New_York}\n")
    assert "brands[0].owners[0].timezone: unknown time zone 'New_York'" in str(error)
