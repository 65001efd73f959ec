"""Unit tests for memosd.retrieval.HybridIndex on small synthetic corpora."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from memosd.retrieval import EncoderIdentity, Hit, HybridIndex, RetrievalConfig
from memosd.retrieval.ranking import padded_size, top_fused

CORPUS = [
    "Caroline: I went to a support group yesterday and it was powerful.",
    "Melanie: The kids and I painted a sunrise by the lake last weekend.",
    "Caroline: I'm researching adoption agencies for my future family.",
    "Melanie: We went camping in the mountains and roasted marshmallows.",
    "Caroline: My friend gave me a necklace from my grandmother in Sweden.",
    "Melanie: I signed up for a pottery class, running every Tuesday.",
    "Caroline: Counseling and mental health careers interest me a lot.",
    "Melanie: Our dog Oliver loves long walks in the park.",
]


def build(texts=CORPUS, config=None, one_by_one=False) -> HybridIndex:
    index = HybridIndex(config)
    if one_by_one:
        for slot, text in enumerate(texts):
            index.add(slot, text)
    else:
        index.add_many(list(range(len(texts))), texts)
    return index


def slots(hits: list[Hit]) -> list[int]:
    return [hit.slot for hit in hits]


def posted_slots(index: HybridIndex) -> set[int]:
    """Every slot present in any posting list of either channel."""
    found: set[int] = set()
    for inverted in (index._bm25.index, index._hash.index):
        for plist in inverted.lists:
            if plist is not None:
                found.update(plist.view()[0].tolist())
    return found


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(300)] + ["river", "stone", "garden", "music", "paint"]
    probs = 1.0 / np.arange(1, len(words) + 1)
    probs /= probs.sum()
    return [" ".join(rng.choice(words, size=rng.integers(3, 15), p=probs)) for _ in range(n)]


@pytest.mark.parametrize("one_by_one", [False, True])
def test_document_is_searchable_right_after_add(one_by_one):
    index = build(one_by_one=one_by_one)
    assert len(index) == len(CORPUS)
    assert slots(index.search("pottery class", 3))[0] == 5
    index.add(100, "Caroline: I adopted a hedgehog named Quill.")
    hits = index.search("hedgehog", 5)
    assert slots(hits) == [100]
    assert set(hits[0].channels) == {"bm25", "hash"}


def test_single_and_batch_adds_build_the_same_index():
    texts = synthetic_texts(120)
    batch, single = build(texts), build(texts, one_by_one=True)
    for query in ["river stone", "w3 w5 garden", "music w10", "paint"]:
        a, b = batch.search(query, 15), single.search(query, 15)
        assert slots(a) == slots(b)
        assert np.allclose([h.score for h in a], [h.score for h in b])


def test_chunked_batches_build_the_same_index(monkeypatch):
    texts = synthetic_texts(100, seed=4)
    whole = build(texts)
    monkeypatch.setattr("memosd.retrieval.hybrid._CHUNK", 17)
    chunked = build(texts)
    for query in ["river w2", "garden stone music"]:
        assert whole.search(query, 20) == chunked.search(query, 20)


def test_bm25_scores_match_the_textbook_formula():
    texts = ["apple banana apple", "banana cherry", "cherry cherry cherry date", "apple"]
    config = RetrievalConfig(k1=1.2, b=0.75, hash_weight=0.0)
    hits = build(texts, config).search("apple cherry", 10)
    tf = np.array([[2, 0], [0, 1], [0, 3], [1, 0]], dtype=float)
    df = (tf > 0).sum(axis=0)
    idf = np.log(1 + (4 - df + 0.5) / (df + 0.5))
    dl = np.array([3, 2, 4, 1], dtype=float)
    norm = 1.2 * (1 - 0.75 + 0.75 * dl / dl.mean())
    expected = (tf * 2.2 / (tf + norm[:, None]) * idf).sum(axis=1)
    expected /= expected.max()  # search scales each channel to a maximum of 1
    order = np.argsort(-expected, kind="stable")
    assert slots(hits) == order.tolist()
    assert np.allclose([h.score for h in hits], expected[order], rtol=1e-5)


def test_remove_purges_every_posting():
    index = build()
    before = index.resident_bytes()
    index.remove(4, CORPUS[4])
    assert "necklace" not in index._tokenizer._cache
    assert len(index) == len(CORPUS) - 1
    assert 4 not in posted_slots(index)
    assert index.search("necklace grandmother Sweden", 10) == []
    assert index._bm25.vocabulary.get("necklac") is None
    assert index.resident_bytes() < before
    with pytest.raises(KeyError):
        index.remove(4, CORPUS[4])


def test_remove_with_wrong_text_still_purges():
    index = build()
    index.remove(7, "completely different words")
    assert 7 not in posted_slots(index)
    assert 7 not in slots(index.search("dog Oliver walks park", 10))


def test_removal_matches_an_index_that_never_had_the_documents():
    texts = synthetic_texts(80, seed=1)
    removed = set(range(0, 80, 7))
    index = build(texts)
    for slot in sorted(removed):
        index.remove(slot, texts[slot])
    fresh = HybridIndex()
    kept = [s for s in range(80) if s not in removed]
    fresh.add_many(kept, [texts[s] for s in kept])
    for query in ["river", "w1 w2 stone", "garden music w7"]:
        a, b = index.search(query, 20), fresh.search(query, 20)
        assert slots(a) == slots(b)
        assert np.allclose([h.score for h in a], [h.score for h in b])


def test_duplicate_or_negative_slot_is_rejected():
    index = build()
    with pytest.raises(ValueError):
        index.add(0, "again")
    with pytest.raises(ValueError):
        index.add(-1, "negative")
    with pytest.raises(ValueError):
        index.add_many([50, 50], ["a", "b"])
    with pytest.raises(TypeError):
        index.add(51, None)
    assert len(index) == len(CORPUS)


def test_allowed_mask_is_respected():
    index = build()
    best = slots(index.search("Caroline", 10))
    allowed = np.ones(len(CORPUS), dtype=bool)
    allowed[best[0]] = False
    assert best[0] not in slots(index.search("Caroline", 10, allowed))
    # Slots past the end of the mask are not allowed.
    short = np.ones(3, dtype=bool)
    assert all(s < 3 for s in slots(index.search("Caroline Melanie", 10, short)))
    assert index.search("Caroline", 10, np.zeros(0, dtype=bool)) == []
    assert slots(index.search_vector(index.encode(["pottery"])[0], 5, short)) == []
    with pytest.raises(TypeError):
        index.search("Caroline", 10, np.ones(len(CORPUS), dtype=np.int64))


def test_results_are_deterministic_and_ties_go_to_lower_slot():
    texts = ["the same words here"] * 5 + ["other text entirely"]
    order = [3, 0, 4, 1, 2, 5]
    index = HybridIndex()
    index.add_many(order, [texts[i] for i in order])
    hits = index.search("same words", 10)
    assert slots(hits) == [0, 1, 2, 3, 4]
    assert len({h.score for h in hits}) == 1
    assert index.search("same words", 10) == hits
    assert build(texts).search("same words", 3) == hits[:3]


def test_stemming_matches_inflections():
    index = build()
    assert slots(index.search("runs", 3))[0] == 5
    assert slots(index.search("painting", 3))[0] == 1


def test_bigrams_favour_the_phrase_in_order():
    texts = ["york new is a city", "new york is a city", "boston is a city"]
    index = build(texts)
    assert slots(index.search("new york", 3))[:2] == [1, 0]
    bm25_only = build(texts, RetrievalConfig(hash_weight=0.0))
    assert slots(bm25_only.search("new york", 3))[:2] == [0, 1]


def test_search_vector_matches_hash_channel_of_search():
    texts = synthetic_texts(150, seed=2)
    hash_only = build(texts, RetrievalConfig(bm25_weight=0.0))
    for query in ["river stone", "w4 garden", "music paint w2 w9"]:
        by_text = hash_only.search(query, 12)
        by_vector = hash_only.search_vector(hash_only.encode([query])[0], 12)
        assert slots(by_text) == slots(by_vector)
        assert all(h.channels == ("hash",) for h in by_vector)
    with pytest.raises(ValueError):
        hash_only.search_vector(np.ones(7, dtype=np.float32), 3)


def test_encode_is_stable_normalised_and_sized():
    index = HybridIndex(RetrievalConfig(hash_dim=512))
    vectors = index.encode(["zebra", "Zebras graze quietly", "the and of"])
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    assert np.flatnonzero(vectors[0]).tolist() == [zlib.crc32(b"zebra") % 512]
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1.0)
    assert not vectors[2].any()
    assert np.array_equal(vectors, HybridIndex(RetrievalConfig(hash_dim=512)).encode(
        ["zebra", "Zebras graze quietly", "the and of"]))
    identity = index.encoder_identity
    assert isinstance(identity, EncoderIdentity)
    assert identity.name == "memosd-hash" and identity.dim == 512


def test_empty_and_stopword_only_queries_return_nothing():
    index = build()
    assert index.search("", 5) == []
    assert index.search("the and of it was", 5) == []
    assert index.search("?!,", 5) == []
    assert HybridIndex().search("anything", 5) == []
    assert index.search("Caroline", 0) == []


def test_unicode_text():
    index = build(["Café naïve à Straße", "東京 タワー", "plain ascii"])
    assert slots(index.search("café", 3)) == [0]
    assert slots(index.search("STRASSE", 3)) == [0]
    assert slots(index.search("東京", 3)) == [1]


def test_limit_larger_than_index():
    index = build()
    hits = index.search("Caroline Melanie", 1000)
    assert sorted(slots(hits)) == list(range(len(CORPUS)))
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("depth", [1, 10, 100])
@pytest.mark.parametrize("normalise", [False, True])
def test_top_fused_matches_a_full_sort(depth, normalise):
    rng = np.random.default_rng(depth)
    size = padded_size(5000)
    channels = []
    for weight in (1.0, 0.5):
        scores = np.zeros(size)
        touched = rng.choice(5000, 2000, replace=False)
        scores[touched] = rng.integers(1, 40, size=2000) / 8.0  # many exact ties
        channels.append((weight, scores))
    found, values = top_fused(channels, depth, normalise)
    fused = sum((w / s.max() if normalise else w) * s for w, s in channels)
    positive = np.flatnonzero(fused > 0)
    expected = positive[np.lexsort((positive, -fused[positive]))][:depth]
    assert found.tolist() == expected.tolist()
    assert np.allclose(values, fused[expected])


def test_config_rejects_disabling_every_channel():
    with pytest.raises(ValueError):
        RetrievalConfig(bm25_weight=0.0, hash_weight=0.0)


@pytest.mark.parametrize("dim, bigram_weight, norm_exponent", [(64, 0.5, 0.5), (1 << 18, 0.5, 0.25), (4096, 0.0, 1.0)])
def test_a_turn_featurised_alone_has_the_numbers_a_batch_gives_it(dim, bigram_weight, norm_exponent):
    # A write featurises its one turn alone, a start-up rebuild in batches: the stored vectors (and so
    # every fine score and page vector) must not depend on which path made them. dim 64 forces collisions.
    from memosd.bench.workload import Workload
    from memosd.tiers.fine import Featurizer

    texts = [mem.text for mem in Workload(None, seed=5).memories(300)] + ["", "the of and", "x"]
    featurizer = Featurizer(dim, bigram_weight, norm_exponent)
    batch = featurizer.rows(texts)
    assert len(batch) == len(texts) > 16  # the batch path, not the one-by-one path
    for text, (buckets, weights) in zip(texts, batch):
        [(alone_buckets, alone_weights)] = featurizer.rows([text])
        assert alone_buckets.dtype == buckets.dtype and alone_weights.dtype == weights.dtype
        assert np.array_equal(alone_buckets, buckets) and np.array_equal(alone_weights, weights), text


def test_a_trimmed_index_answers_as_before_holds_no_spare_room_and_grows_again():
    texts = synthetic_texts(300, seed=9)
    queries = ["river stone", "w3 w5 garden", "music w10", "paint w1"]
    kept, trimmed = HybridIndex(), HybridIndex()
    for index in (kept, trimmed):  # batches, as a load indexes them: lists grow by doubling
        for start in range(0, 200, 20):
            index.add_many(list(range(start, start + 20)), texts[start:start + 20])
    trimmed.trim()
    for inverted in (trimmed._bm25.index, trimmed._hash.index):
        assert all(len(p.slots) == p.size for p in inverted.lists if p is not None)
    assert trimmed.resident_bytes() < kept.resident_bytes()
    for index in (kept, trimmed):  # new documents after the trim, one by one and in a batch
        index.add(200, texts[200])
        index.add_many(list(range(201, 300)), texts[201:])
    for query in queries:
        a, b = kept.search(query, 20), trimmed.search(query, 20)
        assert slots(a) == slots(b) and [h.score for h in a] == [h.score for h in b]
