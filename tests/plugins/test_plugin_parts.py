"""The plugin system's parts on their own: built-ins, guard, fusion, discovery (no daemon)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from memosd.config import PluginsConfig
from memosd.plugins import BACKENDS, ENCODERS, Encoder, VectorBackend
from memosd.plugins.builtin import HashDenseEncoder, NumpyBackend
from memosd.plugins.fusion import fuse_scores
from memosd.plugins.guard import PluginError, Worker, check_vectors
from memosd.plugins.registry import PluginRegistry
from memosd.retrieval import Hit


def test_hash_dense_is_deterministic_normalised_and_meaningful():
    enc = HashDenseEncoder()
    assert isinstance(enc, Encoder)
    texts = ["the cat sat on the mat", "a cat on a mat", "stock markets fell sharply", "the"]
    a, b = enc.encode(texts), HashDenseEncoder().encode(texts)
    assert a.dtype == np.float32 and a.shape == (4, 256) and np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a[:3], axis=1), 1.0, atol=1e-5) and not a[3].any()
    assert a[0] @ a[1] > a[0] @ a[2] + 0.3


def test_numpy_backend_replace_remove_mask_and_ties():
    backend = NumpyBackend(2)
    assert isinstance(backend, VectorBackend)
    v = np.array([[1, 0], [0, 1], [1, 0], [0.6, 0.8]], dtype=np.float32)
    backend.add(np.array([7, 3, 5, 200]), v)
    keys, scores = backend.search(np.array([1, 0], np.float32), 3)
    assert keys.tolist() == [5, 7, 200] and scores.tolist()[:2] == [1.0, 1.0]  # tie: key ascending
    backend.add(np.array([5]), np.array([[0, 1]], np.float32))  # replace
    backend.remove(np.array([7, 999]))
    assert len(backend) == 3
    keys, _ = backend.search(np.array([1, 0], np.float32), 3)
    assert keys.tolist() == [200, 3, 5]
    allowed = np.zeros(10, bool)
    allowed[3] = True  # key 200 is past the mask's end: excluded
    assert backend.search(np.array([1, 0], np.float32), 3, allowed)[0].tolist() == [3]


def test_score_fusion_reports_channels_and_is_stable():
    lexical = [Hit(4, 2.0, ("bm25",)), Hit(9, 1.5, ("bm25", "hash")), Hit(7, 1.0, ("hash",))]
    dense = [(9, 0.9), (1, 0.8), (4, 0.1)]
    fused = fuse_scores(lexical, dense, 4, 1.0)
    # 9: 0.5 + 1.0, 4: 1.0 + 0.0, 1: 0.875, 7: 0.0 (each list min-max scaled).
    assert [h.slot for h in fused] == [9, 4, 1, 7]
    assert fused[0].channels == ("bm25", "hash", "dense") and fused[2].channels == ("dense",)
    # Equal fused scores: lexical order first, then slot.
    assert [h.slot for h in fuse_scores([Hit(8, 1.0, ("bm25",))], [(2, 0.5)], 2, 1.0)] == [8, 2]


def test_dense_hits_alone_are_scaled_and_ordered_as_when_fused():
    dense = [(5, 0.9), (3, 0.9), (8, 0.5), (1, 0.1)]
    fused = fuse_scores([], dense, 3, 0.5)
    # Min-max scaled over the whole list (1, 1, 0.5, 0), weighted; equal scores by slot.
    assert [(h.slot, h.score, h.channels) for h in fused] == [(3, 0.5, ("dense",)), (5, 0.5, ("dense",)),
                                                               (8, 0.25, ("dense",))]
    # The same as fusing with a lexical list whose hits the dense channel did not return, past them.
    with_lexical = fuse_scores([Hit(99, 1.0, ("bm25",))], dense, 4, 0.5)
    assert [h.slot for h in with_lexical[1:]] == [h.slot for h in fused]


def test_check_vectors_accepts_one_unit_or_zero_row_and_rejects_a_nan():
    unit = np.array([[0.6, 0.8]], np.float32)
    assert check_vectors(unit, 1, 2, "enc").tolist() == unit.tolist()
    assert not check_vectors(np.zeros((1, 2), np.float32), 1, 2, "enc").any()
    with pytest.raises(PluginError, match="non-finite"):
        check_vectors(np.array([[np.nan, 1.0]], np.float32), 1, 2, "enc")
    with pytest.raises(PluginError, match="not L2-normalised"):
        check_vectors(np.array([[0.6, 0.81]], np.float32), 1, 2, "enc")


def test_worker_reports_errors_and_hangs():
    worker = Worker("t", 0.2)
    assert worker.call(lambda x: x + 1, 1) == 2
    with pytest.raises(PluginError, match="ValueError: nope"):
        worker.call(lambda: (_ for _ in ()).throw(ValueError("nope")))
    started = time.monotonic()
    with pytest.raises(PluginError, match="did not answer within 0.2s"):
        worker.call(time.sleep, 30)
    assert time.monotonic() - started < 5
    with pytest.raises(PluginError, match="hung earlier"):
        worker.call(lambda: 1)


def test_a_call_queued_behind_a_hung_one_gives_up_with_it():
    import threading

    worker = Worker("t", 0.5)
    errors = []
    first = threading.Thread(target=lambda: errors.append(_error(worker.call, time.sleep, 30)))
    first.start()
    time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(PluginError, match="hung"):
        worker.call(lambda: 1)  # waits behind the hung call, not for 10 timeouts
    assert time.monotonic() - started < 3  # about one timeout, not ten
    first.join()
    assert "did not answer" in errors[0]


def _error(fn, *args) -> str:
    try:
        fn(*args)
    except PluginError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize("out, message", [
    ([[1.0]], "not a numpy array"),
    (np.ones((1, 2), np.float64), "dtype float64"),
    (np.ones((2, 2), np.float32), "shape"),
    (np.full((1, 2), np.inf, np.float32), "non-finite"),
    (np.ones((1, 2), np.float32), "not L2-normalised"),
])
def test_check_vectors_rejects(out, message):
    with pytest.raises(PluginError, match=message):
        check_vectors(out, 1, 2, "enc")


def test_builtins_are_discovered_through_entry_points():
    registry = PluginRegistry(PluginsConfig(encoder="hash-dense"))
    registry.load()
    infos = {(p.group, p.name): p for p in registry.infos()}
    assert infos[(ENCODERS, "hash-dense")].status == "loaded"
    assert infos[(BACKENDS, "numpy")].status == "loaded"
    assert infos[(ENCODERS, "hash-dense")].target == "memosd.plugins.builtin:HashDenseEncoder"
    assert registry.encoder.identity == "hash-dense/1/256" and not registry.errors()
