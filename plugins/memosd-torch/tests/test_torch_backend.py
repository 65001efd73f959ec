"""The torch backend against memosd's exact numpy backend, on the CPU (and on CUDA where present)."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch

from memosd.plugins.api import VectorBackend
from memosd.plugins.builtin import NumpyBackend
from memosd_torch import TorchBackend, resolve_device
from memosd_torch.backend import INITIAL_CAPACITY

# (device, who computes the scores on the CPU): both CPU paths, and CUDA where present.
DEVICES = [("cpu", "numpy"), ("cpu", "torch")] + ([("cuda", "torch")] if torch.cuda.is_available() else [])


def quantized(n: int, dim: int, seed: int, levels: int = 8) -> np.ndarray:
    """Vectors of multiples of 1/16: their inner products are exact in float32 whatever the summation order,
    so torch and numpy compute bit-identical scores and ties are real ties."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-levels, levels + 1, size=(n, dim)) / 16).astype(np.float32)


def assert_same(got, want):
    assert got[0].dtype == np.int64 and got[1].dtype == np.float32
    assert got[0].tolist() == want[0].tolist()
    assert got[1].tolist() == want[1].tolist()


@pytest.fixture(params=DEVICES, ids=["cpu-numpy-gemv", "cpu-torch-gemv", "cuda"][: len(DEVICES)])
def make(request):
    """A factory of backends on the parametrised device."""
    device, gemv = request.param
    return lambda dim: TorchBackend(dim, device=device, cpu_gemv=gemv)


def test_protocol_and_the_daemons_load_probe(make):
    backend = make(4)
    assert isinstance(backend, VectorBackend)
    # What memosd does at load: add, search, remove two vectors.
    backend.add(np.array([0, 1], dtype=np.int64), np.eye(4, dtype=np.float32)[:2])
    keys, scores = backend.search(np.eye(4, dtype=np.float32)[1], 2)
    assert keys.dtype == np.int64 and scores.dtype == np.float32
    assert keys.tolist() == [1, 0] and scores.tolist() == [1.0, 0.0]
    assert len(backend) == 2 and backend.nbytes > 0
    backend.remove(np.array([0, 1, 99], dtype=np.int64))  # unknown keys are ignored
    assert len(backend) == 0
    keys, scores = backend.search(np.eye(4, dtype=np.float32)[1], 2)
    assert len(keys) == 0 and len(scores) == 0
    assert len(backend.search(np.eye(4, dtype=np.float32)[1], 0)[0]) == 0


def test_equal_scores_are_ordered_by_key_even_across_the_kth_place(make):
    # 12 identical vectors under shuffled keys: every score ties, topk alone would pick any 5 of them.
    vectors = np.tile(np.eye(8, dtype=np.float32)[:1], (12, 1))
    vectors[[2, 7]] = np.eye(8, dtype=np.float32)[1]  # two worse ones
    keys = np.array([40, 3, 17, 8, 25, 1, 33, 12, 5, 29, 0, 21], dtype=np.int64)
    mine, ref = make(8), NumpyBackend(8)
    mine.add(keys, vectors)
    ref.add(keys, vectors)
    for k in (1, 5, 9, 10, 11, 12, 20):
        assert_same(mine.search(vectors[0], k), ref.search(vectors[0], k))
    assert mine.search(vectors[0], 5)[0].tolist() == [0, 1, 3, 5, 8]
    allowed = np.zeros(41, dtype=bool)
    allowed[[40, 33, 3, 17]] = True
    assert mine.search(vectors[0], 3, allowed)[0].tolist() == [3, 33, 40]


def test_results_equal_numpy_through_random_adds_replacements_removals_and_masks(make):
    rng = np.random.default_rng(0)
    dim = 24
    mine, ref = make(dim), NumpyBackend(dim)
    queries = quantized(30, dim, seed=1)
    for step in range(40):
        # Keys drawn from a small range: many replacements; batches large enough to grow the capacity.
        keys = rng.integers(0, 6000, size=int(rng.integers(1, 700))).astype(np.int64)
        vectors = quantized(len(keys), dim, seed=100 + step, levels=2)  # few levels: many exact ties
        mine.add(keys, vectors)
        # The numpy backend takes the *first* row of a repeated key's last write in order; feed it the same.
        _, last = np.unique(keys[::-1], return_index=True)
        pick = np.sort(len(keys) - 1 - last)
        ref.add(keys[pick], vectors[pick])
        if step % 3 == 2:
            gone = rng.integers(0, 7000, size=int(rng.integers(1, 900))).astype(np.int64)
            mine.remove(gone)
            ref.remove(gone)
        assert len(mine) == len(ref)
        masks = [None, rng.random(6000) < 0.5, rng.random(3000) < 0.3, np.zeros(6000, bool), np.zeros(0, bool)]
        masks.append(np.zeros(6000, bool))
        masks[-1][rng.choice(6000, 3, replace=False)] = True  # fewer allowed keys than k
        for q in queries[:4]:
            for k in (1, 10, 50):
                for allowed in masks:
                    assert_same(mine.search(q, k, allowed), ref.search(q, k, allowed))
    assert mine.capacity >= len(mine)


def test_close_to_numpy_on_normalised_float_vectors(make):
    """Real-valued unit vectors: scores agree to float32 rounding, keys wherever scores are not near-ties."""
    rng = np.random.default_rng(5)
    data = rng.standard_normal((20_000, 384)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    mine, ref = make(384), NumpyBackend(384)
    for start in range(0, len(data), 4096):
        keys = np.arange(start, min(start + 4096, len(data)), dtype=np.int64)
        mine.add(keys, data[keys])
        ref.add(keys, data[keys])
    for q in data[:50] + 0.1 * rng.standard_normal((50, 384)).astype(np.float32):
        got, want = mine.search(q, 10), ref.search(q, 10)
        np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-5)
        np.testing.assert_allclose(got[1], data[got[0]] @ q, rtol=0, atol=1e-5)
        assert got[0].tolist() == want[0].tolist() or np.min(np.abs(np.diff(want[1]))) < 1e-5


def test_replace_on_add_and_repeated_keys_in_one_batch(make):
    backend = make(4)
    eye = np.eye(4, dtype=np.float32)
    backend.add(np.array([7, 7, 2], dtype=np.int64), eye[[0, 1, 2]])  # key 7: the last row (eye[1]) wins
    assert len(backend) == 2
    assert backend.search(eye[1], 1)[0].tolist() == [7]
    assert backend.search(eye[0], 2)[1].tolist() == [0.0, 0.0]
    backend.add(np.array([2], dtype=np.int64), eye[3:4])  # replaced in place
    assert len(backend) == 2 and backend.search(eye[3], 1)[0].tolist() == [2]
    with pytest.raises(ValueError):
        backend.add(np.array([-1], dtype=np.int64), eye[:1])


def test_capacity_grows_and_shrinks_and_removed_keys_never_come_back(make):
    dim = 16
    backend = make(dim)
    data = quantized(10_000, dim, seed=3)
    backend.add(np.arange(10_000, dtype=np.int64), data)
    assert backend.capacity >= 10_000
    grown = backend.nbytes
    backend.remove(np.arange(0, 9_900, dtype=np.int64))
    assert len(backend) == 100 and backend.capacity == INITIAL_CAPACITY and backend.nbytes < grown / 4
    keys, _ = backend.search(data[5], 200)
    assert sorted(keys.tolist()) == list(range(9_900, 10_000))
    backend.add(np.array([5], dtype=np.int64), data[5:6])  # a removed key comes back when re-added
    assert backend.search(data[5], 1)[0].tolist() == [5]


def test_read_only_inputs_are_accepted(make):
    backend = make(4)
    keys, vectors, allowed = np.arange(3, dtype=np.int64), np.eye(4, dtype=np.float32)[:3], np.ones(3, bool)
    for a in (keys, vectors, allowed):
        a.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.from_numpy warns on read-only arrays: the backend must copy them
        backend.add(keys, vectors)
        assert backend.search(vectors[0], 1, allowed)[0].tolist() == [0]


def test_concurrent_calls_are_serialised(make):
    dim = 16
    backend = make(dim)
    data = quantized(4000, dim, seed=9)
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for start in range(0, 1000, 50):
                keys = np.arange(offset + start, offset + start + 50, dtype=np.int64)
                backend.add(keys, data[keys])
                backend.remove(keys[::5])
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    def reader() -> None:
        try:
            for q in data[:200]:
                keys, scores = backend.search(q, 10, np.ones(4000, bool))
                assert len(keys) == len(scores) <= 10
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i * 1000,)) for i in range(4)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(backend) == 4 * 800
    ref = NumpyBackend(dim)
    kept = np.array([k for k in range(4000) if k % 50 % 5 != 0], dtype=np.int64)
    ref.add(kept, data[kept])
    for q in data[:20]:
        assert_same(backend.search(q, 10), ref.search(q, 10))


def test_device_selection(monkeypatch):
    monkeypatch.setenv("MEMOSD_TORCH_DEVICE", "cpu")
    assert TorchBackend(4).device == torch.device("cpu")
    monkeypatch.setenv("MEMOSD_TORCH_DEVICE", "auto")
    assert resolve_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.delenv("MEMOSD_TORCH_DEVICE")
    assert resolve_device() == resolve_device("auto")
    with pytest.raises(RuntimeError):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ValueError):
        TorchBackend(4, device="cpu", cpu_gemv="fortran")
