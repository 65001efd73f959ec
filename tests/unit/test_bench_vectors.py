"""The peer comparison's vectors and the encoder that hands them to the daemon."""

import numpy as np

from memosd.bench.embeddings import exact_top_k, make_vector_set, recall_at_k
from memosd.bench.vector_encoder import ENV, BenchVectorEncoder, memory_text, query_text
from memosd.retrieval.tokenizer import Tokenizer


def test_vector_set_is_reproducible_unit_and_exact():
    a = make_vector_set(500, 20, dim=48, k=5, seed=3)
    b = make_vector_set(500, 20, dim=48, k=5, seed=3)
    assert np.array_equal(a.memories, b.memories) and np.array_equal(a.queries, b.queries)
    assert np.allclose(np.linalg.norm(a.memories, axis=1), 1.0, atol=1e-5)
    brute = np.argsort(-(a.queries @ a.memories.T), axis=1, kind="stable")[:, :5]
    assert np.array_equal(a.truth, brute)
    assert recall_at_k(a.truth.tolist(), a.truth) == 1.0
    assert recall_at_k([row[:1] for row in a.truth.tolist()], a.truth) == 0.2


def test_vectors_are_near_a_subspace_not_uniform():
    vs = make_vector_set(2000, 1, dim=128, seed=0)
    singular = np.linalg.svd(vs.memories, compute_uv=False)
    energy = singular**2 / np.sum(singular**2)
    assert energy[:32].sum() > 0.8  # uniform random rows would put about 32/128 of it there


def test_exact_top_k_orders_best_first():
    memories = np.eye(4, dtype=np.float32)
    query = np.array([[0.1, 0.9, 0.5, 0.0]], dtype=np.float32)
    assert exact_top_k(memories, query, 3).tolist() == [[1, 2, 0]]


def test_encoder_looks_rows_up_and_query_texts_have_no_index_terms(tmp_path, monkeypatch):
    vs = make_vector_set(50, 12, dim=16, seed=1)
    np.save(tmp_path / "memories.npy", vs.memories)
    np.save(tmp_path / "queries.npy", vs.queries)
    monkeypatch.setenv(ENV, str(tmp_path))
    encoder = BenchVectorEncoder()
    assert encoder.dim == 16
    assert np.array_equal(encoder.encode([memory_text(7), memory_text(49)]), vs.memories[[7, 49]])
    assert np.array_equal(encoder.encode_query([query_text(0), query_text(11)]), vs.queries[[0, 11]])
    probe = encoder.encode(["memosd plugin probe: the quick brown fox"])
    assert probe.dtype == np.float32 and np.isclose(np.linalg.norm(probe), 1.0)
    assert all(Tokenizer().terms(query_text(i)) == [] for i in range(200))
