"""Batching, order, normalisation and the reshare cache, on the real default model."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from models.sentiment import (
    ClassifierOptions,
    ModelNotBuiltError,
    SentimentClassifier,
    SentimentError,
    load_classifier,
    normalise_model_input,
)

TEXTS = [
    "Je déteste cette marque, plus jamais !",
    "ok",
    "Absolutely love this phone, the battery lasts forever and the camera is superb!",
    "Le magasin ouvre à 9h.",
    "Worst service ever",
    "Merci pour la réponse rapide, problème réglé en cinq minutes, bravo l'équipe support",
    "New store opening on Monday",
]


# fp32 here: dynamic int8 picks its activation scales per batch, so its probabilities
# move by a few hundredths with the batch's company; fp32 only by rounding.
@pytest.fixture(scope="module")
def one_by_one(model_dir):
    clf = load_classifier(ClassifierOptions(
        runtime="onnx", cache_dir=model_dir, batch_size=1, cache_size=0
    ))
    return {t: clf.predict([t])[0] for t in TEXTS}


def test_batched_results_come_back_in_input_order(model_dir, one_by_one):
    clf = load_classifier(ClassifierOptions(
        runtime="onnx", cache_dir=model_dir, batch_size=3, cache_size=0
    ))
    shuffled = TEXTS[3:] + TEXTS[:3]
    results = clf.predict(shuffled)
    assert [r.label for r in results] == [one_by_one[t].label for t in shuffled]
    for text, result in zip(shuffled, results, strict=True):
        for label, p in result.scores.items():
            assert abs(p - one_by_one[text].scores[label]) < 1e-3  # padding is masked out


def test_concurrent_batches_give_the_sequential_results(model_dir, one_by_one):
    parallel = load_classifier(ClassifierOptions(
        runtime="onnx", cache_dir=model_dir, threads=2, batch_size=2, cache_size=0
    ))
    assert parallel.backend.concurrency == 2
    results = parallel.predict(TEXTS * 3)  # 11 batches over 2 threads
    parallel.close()
    for text, result in zip(TEXTS * 3, results, strict=True):
        assert result.label == one_by_one[text].label
        for label, p in result.scores.items():
            assert abs(p - one_by_one[text].scores[label]) < 1e-3


class _MeetingBackend:
    """Each call waits until `concurrency` calls are inside at once: the barrier breaks
    (and the test fails) if the classifier runs its batches one after another."""

    name = "meeting"

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.barrier = threading.Barrier(concurrency, timeout=10)
        self.threads: set[str] = set()

    def probabilities(self, texts: list[str]) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        self.barrier.wait()
        return np.tile([0.2, 0.5, 0.3], (len(texts), 1))


def test_batches_run_side_by_side_up_to_the_backend_concurrency():
    backend = _MeetingBackend(concurrency=3)
    clf = SentimentClassifier(backend, batch_size=2, cache_size=0)
    results = clf.predict([f"post {i}" for i in range(12)])  # 6 batches, 2 rounds of 3
    clf.close()
    assert [r.label for r in results] == ["neutral"] * 12
    assert len(backend.threads) == 3


def test_batches_group_texts_of_equal_token_counts_and_results_keep_the_order(model_dir):
    clf = load_classifier(ClassifierOptions(
        runtime="onnx", cache_dir=model_dir, threads=1, batch_size=4, cache_size=0
    ))
    seen: list[list[int]] = []
    # The default model's backend scores and gives sentence vectors in one run.
    score_batch = clf.backend.probabilities_and_vectors

    def recording(encoded):
        seen.append([len(ids) for ids in encoded])
        return score_batch(encoded)

    clf.backend.probabilities_and_vectors = recording
    # Short French words cost more tokens per character than English ones: sorted by
    # characters these would share batches with texts of other token counts.
    texts = [f"{word} {'!' * (i % 5)}" for i, word in enumerate(
        ["ok", "déçu", "superbe", "inadmissible", "merci", "nul", "génial", "bof"] * 2
    )]
    results = clf.predict(texts)
    counts = [len(ids) for ids in clf.backend.prepare([normalise_model_input(t) for t in texts])]
    assert sorted(sum(seen, [])) == sorted(counts)  # every text scored once
    assert sum(seen, []) == sorted(counts)  # ...in batches by increasing token count
    alone = load_classifier(ClassifierOptions(
        runtime="onnx", cache_dir=model_dir, batch_size=1, cache_size=0
    ))
    assert [r.label for r in results] == [alone.predict([t])[0].label for t in texts]


def test_a_reshared_text_is_scored_once(model_dir):
    clf = load_classifier(ClassifierOptions(cache_dir=model_dir, cache_size=100))
    original = "Scandale chez Acme : les documents internes ont fuité"
    reshare = "  Scandale chez  Acme :\tles documents internes ont fuité "
    first = clf.predict([original, reshare, original])
    assert clf.texts_scored == 1
    assert first[0] == first[1] == first[2]
    again = clf.predict([reshare, "un autre texte"])
    assert clf.texts_scored == 2  # only the new text went to the model
    assert again[0] == first[0]


def test_cache_is_bounded_and_least_recently_used_goes_first(model_dir):
    clf = load_classifier(ClassifierOptions(cache_dir=model_dir, cache_size=2))
    clf.predict(["a"])
    clf.predict(["b"])
    clf.predict(["a"])  # a is now the most recent
    clf.predict(["c"])  # evicts b
    scored = clf.texts_scored
    clf.predict(["a", "c"])
    assert clf.texts_scored == scored
    clf.predict(["b"])
    assert clf.texts_scored == scored + 1


def test_normalisation_and_bad_input():
    assert normalise_model_input("  e\u0301te\u0301\n\n chaud ") == "\u00e9t\u00e9 chaud"
    with pytest.raises(TypeError, match="expected a str"):
        normalise_model_input(None)  # type: ignore[arg-type]


def test_predict_each_isolates_a_bad_text(model_dir):
    clf = load_classifier(ClassifierOptions(cache_dir=model_dir))
    results = clf.predict_each(["très bon produit", 42, "terrible"])  # type: ignore[list-item]
    assert results[0].label == "positive"
    assert isinstance(results[1], SentimentError) and "expected a str" in str(results[1])
    assert results[2].label == "negative"


def test_missing_default_model_says_how_to_build(tmp_path):
    with pytest.raises(ModelNotBuiltError, match="vigie model build"):
        load_classifier(ClassifierOptions(cache_dir=tmp_path))
    with pytest.raises(ValueError, match="runtime must be one of"):
        load_classifier(ClassifierOptions(runtime="tensorrt", cache_dir=tmp_path))


def test_sentence_vectors_follow_their_texts_and_are_centred_on_their_language(model_dir):
    import numpy as np

    clf = load_classifier(ClassifierOptions(cache_dir=model_dir, threads=1, batch_size=3,
                                            cache_size=0))
    texts = ["Panne de courant dans tout le quartier depuis ce matin",
             "nul",
             "Hackers stole the card details of subscribers, shameful",
             "Ma facture a encore augmenté ce mois-ci, je résilie",
             "Still no power on our street since dawn",
             "merci"]
    together = clf.predict(texts)  # batched by token count, out of the input order
    for text, result in zip(texts, together, strict=True):
        (alone,) = clf.predict([text])
        assert result.vector is not None and result.vector.shape == (384,)
        assert abs(float(np.linalg.norm(result.vector)) - 1) < 1e-3
        # The same text's vector, whatever its batch (int8 activations are quantised per
        # batch, so not bit for bit).
        assert float(result.vector @ alone.vector) > 0.98, text
    french = clf.sentence_vector(together[0], "fr")
    assert french is not None
    assert np.allclose(french, together[0].vector - clf.language_means.means["fr"])
    assert clf.sentence_vector(together[0], "es") is None  # no mean: words only
    plain = load_classifier(ClassifierOptions(cache_dir=model_dir, threads=1,
                                              sentence_vectors=False))
    assert plain.predict(texts[:1])[0].vector is None
    assert plain.predict(texts[:1])[0].label == together[0].label
