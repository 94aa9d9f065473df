"""Surging terms: function words of any language Vigie reads never surge; a leak reads
like a leak."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from models.detection import BrandMonitor, DetectorConfig
from models.detection.terms import STOPWORDS, TermBaseline, extract_terms, is_stopword
from pipeline.generator import BrandProfile, Generator, Scenario

LANGUAGES = ("fr", "en", "es", "de", "it", "pt", "nl")


def test_every_language_vigie_reads_has_its_function_words() -> None:
    assert set(LANGUAGES) <= set(STOPWORDS)
    closed_classes = {
        "fr": "après chez depuis avec dans pour sont leur être ont",
        "en": "after with from their been would about there which",
        "es": "después pero para porque están desde nosotros",
        "de": "nach weil sind nicht wurde haben unser diese",
        "it": "dopo perché sono della questo hanno",
        "pt": "depois porque são também isso pelo",
        "nl": "omdat zijn niet hebben wordt naar",
    }
    missing = {lang: [w for w in words.split() if w not in STOPWORDS[lang]]
               for lang, words in closed_classes.items()}
    assert missing == dict.fromkeys(closed_classes, [])


@pytest.mark.parametrize("text, expected", [
    ("Je résilie tout chez Lumio après ces révélations, scandaleux #LumioLeaks",
     {"résilie", "révélations", "scandaleux", "#lumioleaks"}),
    ("Encore une panne chez Lumio, ça commence à bien faire", {"panne", "commence"}),
    ("The Lumio leak is damning, management knew all along", {"leak", "damning",
                                                               "management", "knew"}),
    ("Lumio hat die Kundendaten verkauft, weil sie nichts gelernt haben",
     {"kundendaten", "verkauft", "gelernt"}),
    ("Lumio ha venduto i dati dei clienti perché non gli importa",
     {"venduto", "dati", "clienti", "importa"}),
    ("Lumio vendió los datos de sus clientes y nadie dice nada", {"vendió", "datos",
                                                                  "clientes", "nadie", "dice"}),
    ("A Lumio vendeu os dados dos clientes, que vergonha", {"vendeu", "dados", "clientes",
                                                           "vergonha"}),
    ("Lumio heeft de gegevens van klanten verkocht, schandalig", {"gegevens", "klanten",
                                                                  "verkocht", "schandalig"}),
    ("Apres ca, je quitte Lumio: l'équipe savait https://t.co/abc www.lumio.fr",
     {"quitte", "équipe", "savait"}),
    ("Lumio doesn't care, they're lying 2026", {"care", "lying"}),
])
def test_terms_of_a_post_are_its_content_words(text: str, expected: set[str]) -> None:
    assert extract_terms(text, ["lumio"]) == expected


def test_function_words_are_known_with_or_without_accents() -> None:
    assert is_stopword("après") and is_stopword("apres") and is_stopword("APRÈS")
    assert not is_stopword("fuite") and not is_stopword("documents")


def test_no_stopword_surges_even_when_a_wave_repeats_it() -> None:
    baseline = TermBaseline()
    baseline.learn(Counter({"service": 5, "client": 5}), 50, 1.0)
    wave = Counter()
    for _ in range(28):
        wave.update(extract_terms("Je résilie tout chez Lumio après ces révélations", ["lumio"]))
    surging = [row["term"] for row in baseline.surging(wave, 28, 10)]
    assert surging and not any(is_stopword(term) for term in surging)
    assert {"résilie", "révélations"} <= set(surging)


def _mention(post: dict, brand: str, label: str) -> dict:
    return {
        "brand": brand, "post_key": f"{post['platform']}:{post['id']}", "url": post.get("url"),
        "created_at": post["created_at"], "author": post["author"], "text": post["text"],
        "reach": int(post["author"]["followers"]), "sentiment": {"label": label},
        "matched": [brand],
    }


def test_the_demo_leak_surges_with_words_of_the_leak() -> None:
    """The demo's scenario (a wikirévélation about Lumio after ordinary chatter), through
    BrandMonitor with 1-minute intervals: the alert's terms are the leak's own words."""
    start = datetime(2026, 3, 3, 8, tzinfo=UTC)
    lumio = BrandProfile("lumio", ("Lumio Energie", "Lumio"), ("#lumio",), ("@lumio",),
                         base_per_minute=3.0)
    leak = Scenario("wikirevelation", "lumio", start_minute=240, duration_minutes=40,
                    peak_per_minute=300)
    generator = Generator([lumio], start, seed=5, scenarios=[leak])
    monitor = BrandMonitor("lumio", "Lumio Energie", DetectorConfig(quiet_minutes=30))
    rng = random.Random(5)
    minute, opened = start, None
    for post in generator.posts(300):
        moment = datetime.fromisoformat(post["created_at"])
        while moment >= minute + timedelta(minutes=1):
            events = monitor.close_interval(minute, minute + timedelta(minutes=1))
            opened = opened or next((e for e in events if e["event"] == "opened"), None)
            minute += timedelta(minutes=1)
        in_leak = "Leaks" in post["text"]
        label = "negative" if in_leak or rng.random() < 0.2 else "neutral"
        monitor.add_mention(_mention(post, "lumio", label))
    assert opened is not None, "the leak opens an incident"
    terms = [row["term"] for row in opened["surging_terms"]]
    assert len(terms) >= 5
    assert not [term for term in terms if is_stopword(term)]
    leak_words = {
        "#lumioleaks", "documents", "données", "clients", "révèlent", "revendues", "fuite",
        "scandale", "direction", "honteux", "menti", "révélations", "scandaleux", "boycott",
        "vendu", "accablants", "leaked", "leak", "data", "customer", "customers", "scandal",
        "internes", "exclusif", "millions", "expliquer", "lied", "damning", "sold",
    }
    assert set(terms) <= leak_words | {"énergie", "energie"}, terms
    assert "#lumioleaks" in terms
