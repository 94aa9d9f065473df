"""Accent folding gives exactly what its first, per-character definitions gave, for every
code point and for random texts of many scripts (the fast paths are exact): brand
matching's `fold`, `models.text.without_combining` under it, and the storylines' and
terms' folds of every word."""

from __future__ import annotations

import random
import unicodedata

import pytest

from models import text as text_module
from models.detection import storylines, terms
from models.text import without_combining
from pipeline import watchlist
from pipeline.watchlist import fold, tokens


def reference_fold(text: str) -> str:
    """The definition before the fast paths (kept here as the reference)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def reference_storyline_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def reference_strip_accents(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# Pieces of text of many scripts, composed and decomposed, with combining marks of the
# Basic Multilingual Plane and beyond it.
ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"#@_-\t\n",
    "éèêëàâäçîïôöùûüÿœæÉÈÊÀÇÔŒÆñÑãõåøÅØłŁßẞđĐı",
    "e\u0301a\u0300o\u0302u\u0308c\u0327n\u0303",  # decomposed accents
    "İĲĳŉǅǰ",  # letters whose decomposition or case folding is unusual
    "αβγδεζηθικλμνξοπρστυφχψωάέήίόύώΐΰϊϋΆΈΉΊΌΎΏς\u0342\u0345",  # Greek, with tonos
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяЁЙ\u0306\u0308",  # Cyrillic
    "مرحبا بالعالم\u064b\u064c\u064d\u064e\u064f\u0650\u0651\u0652\u0670",  # Arabic
    "שלום עולם\u05b0\u05b1\u05b4\u05b7\u05b8\u05bc\u05c1\u05c2",  # Hebrew, niqqud
    "नमस्ते क़ ख़ ग़\u093c\u094d\u0901\u0902\u0903\u093e\u093f",  # Devanagari
    "สวัสดีครับ\u0e31\u0e34\u0e48\u0e49",  # Thai
    "日本語の文章です漢字カタカナﾊﾝｶｸｶﾞ가각갂\u3099\u309a",  # CJK, halfwidth kana, Hangul
    "ﬁﬂﬀﬃﬄﬅﬆ™℃№½²³ⅫⅣ㎏㍻①Ａｂｃ１２３！",  # ligatures, compatibility forms, fullwidth
    "😀👍🏽👨‍👩‍👧❤️🇫🇷🏳️‍🌈\ufe0f\u200d",  # emoji, skin tones, ZWJ, variation selector
    "𝐀𝐁𝐂𝒜𝔸𝕬𝖆",  # mathematical letters (astral, with compatibility forms)
    "\U0001d165\U0001d166\U0001d167\U0001d16d\U0001e8d0\U0001e8d6\U000101fd\U00011046"
    "\U0001e944\U00016af0\U0001e130",  # combining marks beyond U+FFFF
    "\u0300\u0301\u0327\u1ab0\u1dc0\u20d0\u20e1\ufe20\u302a",  # BMP combining blocks
]


def random_text(rng: random.Random) -> str:
    mixed = rng.sample(ALPHABETS, rng.randint(1, 4))
    return "".join(rng.choice(rng.choice(mixed)) for _ in range(rng.randint(0, 80)))


def test_fold_equals_its_definition_on_every_code_point():
    # In runs of consecutive code points (surrogates and unassigned ones included), so a
    # combining character the patterns miss survives into the output and shows.
    for start in range(0, 0x110000, 0x1000):
        chunk = "".join(map(chr, range(start, start + 0x1000)))
        between = "a".join(map(chr, range(start, start + 0x1000)))
        where = f"code points {start:#x}..+0x1000"
        assert fold(chunk) == reference_fold(chunk), where
        assert fold(between) == reference_fold(between), where
        assert without_combining(chunk) == "".join(
            c for c in chunk if not unicodedata.combining(c)), where


def test_every_ascii_character_folds_as_before():
    for cp in range(128):
        assert fold(chr(cp)) == reference_fold(chr(cp))
        assert fold(f"Ab{chr(cp)}Z") == reference_fold(f"Ab{chr(cp)}Z")


def test_fold_equals_its_definition_on_random_texts_of_many_scripts():
    rng = random.Random(17)
    for _ in range(5000):
        text = random_text(rng)
        assert fold(text) == reference_fold(text), ascii(text)
        assert tokens(text) == watchlist._TOKEN.findall(reference_fold(text)), ascii(text)
        assert storylines._fold(text) == reference_storyline_fold(text), ascii(text)
        for word in text.split():
            assert terms._strip_accents(word) == reference_strip_accents(word), ascii(word)
            assert storylines._fold(word) == reference_storyline_fold(word), ascii(word)


def test_storylines_and_terms_of_a_post_are_those_of_the_old_folds(monkeypatch):
    """What the folds feed: a post's stems, its fingerprint, its terms and stopwords."""
    rng = random.Random(5)
    posts = [random_text(rng) for _ in range(1500)]
    posts += ["Après la fuite, Société Générale révèle tout #SociétéGénérale",
              "Ｌｕｍｉｏ ﬁnit par avouer: les abonnés étaient piratés 😡 #LumioLeaks"]
    fast = [(storylines.post_stems(p, ["Lumio"]), storylines.fingerprint(p),
             terms.extract_terms(p, ["lumio"]), [terms.is_stopword(w) for w in p.split()])
            for p in posts]
    monkeypatch.setattr(storylines, "_fold", reference_storyline_fold)
    monkeypatch.setattr(terms, "_strip_accents", reference_strip_accents)
    slow = [(storylines.post_stems(p, ["Lumio"]), storylines.fingerprint(p),
             terms.extract_terms(p, ["lumio"]), [terms.is_stopword(w) for w in p.split()])
            for p in posts]
    assert fast == slow


@pytest.mark.parametrize("text", [
    "", " ", "Société Générale", "SOCIÉTÉ GÉNÉRALE", "#SociétéGénérale", "L'Oréal",
    "\u0301", "\u0301\u0301abc", "abc\u0301", "\U0001d165", "x\U0001d165y",
    "ﬁnance", "Ｏｒａｎｇｅ", "Straße", "İstanbul", "ΐ", "ǰ", "😀", "\ud800", "a\udfffé",
    "e\u0301" * 3000, "é" * 5000,
])
def test_fold_edge_cases(text):
    assert fold(text) == reference_fold(text)
    assert storylines._fold(text) == reference_storyline_fold(text)
    assert terms._strip_accents(text) == reference_strip_accents(text)


def test_the_comparison_catches_a_missing_combining_range(monkeypatch):
    """The checks above fail if the patterns miss any range of combining characters."""
    kept = [cp for cp in range(0x10000) if text_module._bmp_marks().fullmatch(chr(cp))
            and not 0x0591 <= cp <= 0x05C7]
    monkeypatch.setattr(text_module, "_bmp_marks", lambda: text_module._class_of(kept))
    text = "שָׁלוֹם"  # Hebrew with niqqud (U+05B8, U+05C1, U+05B9)
    assert fold(text) != reference_fold(text)
