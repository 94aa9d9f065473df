"""Storylines: a generated wave's scripted stories come out as its storylines."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

from models.detection import BrandMonitor, DetectorConfig
from models.detection import storylines as sl
from pipeline.generator import BrandProfile, Generator, Scenario

BRAND = BrandProfile("lumio", ("Lumio Energie", "Lumio"), ("#Lumio",), ("@lumio_energie",),
                     base_per_minute=3)
IGNORE = ["lumio", "lumio energie", "#lumio", "@lumio_energie"]
START = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def three_storyline_wave(seed: int = 3):
    scenario = Scenario("mixed-wave", "lumio", 20, 40, 60)
    generator = Generator([BRAND], START, seed=seed, scenarios=[scenario], record_truth=True)
    posts = [p for p in generator.posts(34) if p["created_at"] >= "2026-03-03T09:20"]
    return posts, generator.truth


def ref(post: dict) -> dict:
    return {"text": post["text"], "post_key": f"{post['platform']}:{post['id']}",
            "url": post["url"], "created_at": post["created_at"],
            "author_handle": post["author"]["handle"],
            "author_name": post["author"]["display_name"],
            "followers": post["author"]["followers"]}


def test_a_generated_three_storyline_wave_comes_out_as_three_storylines():
    posts, truth = three_storyline_wave()
    sets: dict[str, sl.StorylineSet] = {}
    placed_in = []
    for post in posts:  # one set per minute, merged at the end: as the detector does
        key = f"{post['platform']}:{post['id']}"
        part = sets.setdefault(post["created_at"][:16], sl.StorylineSet())
        negative = truth[key][1] == "negative"
        placed_in.append((key, part, part.add(ref(post), negative, post["author"]["followers"],
                                              IGNORE)))
    placed: dict[int, sl.Storyline] = {}
    merged = sl.merge_storylines(list(sets.values()), placed=placed)
    reported = sl.summarise(merged)
    assert len(reported) == 3, [r["label"] for r in reported]

    # Each reported storyline is one scripted story: its posts are (almost) all of it.
    by_story: dict[int, Counter] = {}
    for key, part, index in placed_in:
        if index is not None and truth[key][1] == "negative":
            target = placed[id(part.storylines[index])]
            by_story.setdefault(id(target), Counter())[truth[key][0] or "background"] += 1
    top3 = [s for s in merged.storylines][:3]
    stories = []
    for storyline in top3:
        story, count = by_story[id(storyline)].most_common(1)[0]
        assert count >= 0.95 * sum(by_story[id(storyline)].values())
        stories.append(story)
    assert stories == ["data-leak", "price-rise", "blackout"]  # scripted 55 / 30 / 15 %
    shares = [r["share"] for r in reported]
    assert shares == sorted(shares, reverse=True) and 0.4 < shares[0] < 0.7

    leak = reported[0]
    assert "#datagate" in leak["terms"] or "fichier" in leak["terms"], leak["terms"]
    assert leak["headline"].startswith("EXCLUSIF : le fichier clients de Lumio Energie")
    # Who started it: the scripted original post, the earliest of its storyline.
    root = next(p for p in posts if truth[f"{p['platform']}:{p['id']}"][0] == "data-leak")
    assert leak["first_post"]["post_key"] == f"{root['platform']}:{root['id']}"
    assert leak["first_post"]["author_handle"] == root["author"]["handle"]
    members = [p for p in posts if truth[f"{p['platform']}:{p['id']}"][0] == "data-leak"]
    assert leak["top_post"]["followers"] == max(p["author"]["followers"] for p in members)
    assert leak["reach"] >= leak["top_post"]["followers"]
    assert 0.9 <= leak["negative_share"] <= 1.0


def test_reshares_and_copies_join_their_original_even_without_shared_words():
    part = sl.StorylineSet()
    first = part.add({"text": "Lumio !!!", "created_at": "2026-03-03T09:00:00+00:00"},
                     True, 10, IGNORE)  # no word left: a reshare still joins by its text
    assert first is None  # nothing to start a storyline with
    a = part.add({"text": "Boycott Lumio, ils ont vendu nos données"}, True, 10, IGNORE)
    b = part.add({"text": "boycott  LUMIO, ils ont vendu nos données https://t.co/x"}, True,
                 10, IGNORE)
    c = part.add({"text": "Panne de courant générale ce matin"}, True, 10, IGNORE)
    assert a == b == 0 and c == 1
    assert part.storylines[0].texts[sl.fingerprint("Boycott Lumio, ils ont vendu nos données")
                                    ][0] == 2


def test_only_negative_posts_start_storylines_and_small_ones_are_not_reported():
    part = sl.StorylineSet()
    assert part.add({"text": "Merci pour la nouvelle offre, top"}, False, 5, IGNORE) is None
    for i in range(20):
        part.add({"text": f"Le fichier clients revendu, scandale {i}"}, True, 100, IGNORE)
    part.add({"text": "Le fichier clients revendu, je comprends"}, False, 100, IGNORE)
    part.add({"text": "Livraison en retard encore"}, True, 1, IGNORE)
    (only,) = sl.summarise(part)
    assert only["posts"] == 21 and only["negative"] == 20
    assert only["negative_share"] == round(20 / 21, 3)
    assert only["share"] == round(20 / 21, 3)  # of all 21 negative posts seen
    assert only["reach"] == 21 * 100  # every post of it, negative or not


def test_state_is_bounded_and_round_trips_through_json():
    part = sl.StorylineSet()
    for i in range(200):
        part.add({"text": f"mot{i}a mot{i}b mot{i}c", "created_at": f"t{i:03}"}, True, 1)
    assert len(part.storylines) == sl.MAX_STORYLINES
    assert part.other_negative == 200 - sl.MAX_STORYLINES
    restored = sl.StorylineSet.from_state(json.loads(json.dumps(part.to_state())))
    assert sl.summarise(restored) == sl.summarise(part)


def test_adjusted_rand_index_and_purity():
    assert sl.adjusted_rand_index("aabb", [1, 1, 2, 2]) == 1.0
    assert sl.purity("aabb", [1, 1, 2, 2]) == 1.0
    assert sl.adjusted_rand_index("aaaabbbb", [1, 2, 1, 2, 1, 2, 1, 2]) < 0
    assert sl.purity("aaab", [1, 1, 1, 1]) == 0.75
    # A known value: sklearn's adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 0.5714...
    assert abs(sl.adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) - 4 / 7) < 1e-9


def test_the_incident_carries_the_storylines_of_its_wave():
    config = DetectorConfig(interval_seconds=60, quiet_minutes=20)
    monitor = BrandMonitor("lumio", "Lumio Energie", config)
    scenario = Scenario("mixed-wave", "lumio", 24 * 60, 25, 60)
    generator = Generator([BRAND], START - timedelta(days=1), seed=5, scenarios=[scenario],
                          record_truth=True)
    minute = START - timedelta(days=1)
    events = []
    for post in generator.posts(24 * 60 + 60):
        moment = datetime.fromisoformat(post["created_at"])
        while moment >= minute + timedelta(minutes=1):
            events += monitor.close_interval(minute, minute + timedelta(minutes=1))
            minute += timedelta(minutes=1)
        key = f"{post['platform']}:{post['id']}"
        monitor.add_mention({
            "brand": "lumio", "post_key": key, "url": post["url"],
            "created_at": post["created_at"], "author": post["author"], "text": post["text"],
            "reach": post["author"]["followers"], "matched": ["lumio"],
            "sentiment": {"label": generator.truth[key][1]}})
    opened = [e for e in events if e["event"] == "opened"]
    assert len(opened) == 1
    later = [e for e in events if e["event"] == "updated"]
    assert later, "the wave grew: an update was sent"
    last = later[-1]
    assert [len(e["storylines"]) for e in later][-1] == 3
    assert last["storylines"][0]["negative"] > last["storylines"][1]["negative"]
    resolved = next(e for e in events if e["event"] == "resolved")
    last_reported = [e for e in events if e["event"] != "resolved"][-1]
    assert resolved["storylines"] == last_reported["storylines"]
    # The state keeps them across a restart.
    state = json.loads(json.dumps(monitor.to_state()))
    assert BrandMonitor.from_state(state, config).to_state() == state


def test_two_stories_sharing_words_stay_apart_by_their_hashtags():
    scenario = Scenario("mixed-wave", "lumio", 20, 40, 60,
                        storylines=("data-leak", "double-billing"), weights=(0.6, 0.4))
    generator = Generator([BRAND], START, seed=2, scenarios=[scenario], record_truth=True)
    posts = [p for p in generator.posts(34) if p["created_at"] >= "2026-03-03T09:20"]
    sets: dict[str, sl.StorylineSet] = {}
    placed_in = []
    for post in posts:
        key = f"{post['platform']}:{post['id']}"
        part = sets.setdefault(post["created_at"][:16], sl.StorylineSet())
        negative = generator.truth[key][1] == "negative"
        placed_in.append((key, part, part.add(ref(post), negative,
                                              post["author"]["followers"], IGNORE)))
    placed: dict[int, sl.Storyline] = {}
    merged = sl.merge_storylines(list(sets.values()), placed=placed)
    assert len(sl.summarise(merged)) == 2
    found: dict[int, Counter] = {}
    for key, part, index in placed_in:
        if index is not None and generator.truth[key][0]:
            target = placed[id(part.storylines[index])]
            found.setdefault(id(target), Counter())[generator.truth[key][0]] += 1
    top = [found[id(s)] for s in merged.storylines[:2]]
    assert [c.most_common(1)[0][0] for c in top] == ["data-leak", "double-billing"]
    assert all(c.most_common(1)[0][1] >= 0.9 * sum(c.values()) for c in top)


def test_who_started_it_is_the_earliest_post_whatever_its_utc_offset():
    part = sl.StorylineSet()
    text = "Le fichier clients de Lumio revendu, scandale"
    part.add({"text": text, "author_handle": "later", "created_at": "2026-03-03T09:05:00+00:00"},
             True, 1, IGNORE)
    # 10:01 in Paris is 09:01 UTC: earlier, though its string sorts after.
    part.add({"text": text, "author_handle": "paris", "created_at": "2026-03-03T10:01:00+01:00"},
             True, 1, IGNORE)
    part.add({"text": text, "author_handle": "none", "created_at": None}, True, 1, IGNORE)
    (only,) = sl.summarise(part)
    assert only["first_post"]["author_handle"] == "paris"


def test_storylines_are_not_linked_or_labelled_by_function_words() -> None:
    # The demo's labels read "boycott · nos · vendu" and "accablants · doit · expliquer"
    # while storylines kept a shorter list of function words than the surging terms.
    stems = sl.post_stems("Boycott : nos données vendues, ACME doit s'expliquer, elle savait")
    assert not {"nos", "doit", "elle"} & set(stems.values())
    assert {"boycott", "données", "vendues"} <= set(stems.values())


def test_stems_are_those_of_the_ending_loop_alone():
    """`_stem` tests all endings at once before its loop; same stems as the loop alone."""
    def reference_stem(word: str) -> str:
        for ending in sl._ENDINGS:
            if word.endswith(ending) and len(word) - len(ending) >= 4:
                word = word[: -len(ending)]
                break
        return word[: sl.STEM_LENGTH]

    # Every ending after stems of 0-7 letters (around the 4 letters a stem keeps), words
    # that end in none, and real words.
    words = [stem + ending for ending in ("", *sl._ENDINGS, "x", "ée", "ments")
             for stem in ("", "a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg",
                          "fact", "révél", "paiem")]
    words += "révèlent révélations paiements facturation piratage abonnés clients données "\
             "leaks outage refunds charged billing hacked fuite payées".split()
    for word in words:
        assert sl._stem(word) == reference_stem(word), word
