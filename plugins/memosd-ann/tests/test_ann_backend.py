"""The hnsw backend against memosd's exact numpy backend, then inside a real daemon.

The integration test needs the package installed (``pip install -e plugins/memosd-ann``)
so that memosd finds the ``hnsw`` entry point, as it would in production.
"""

from __future__ import annotations

import time
from importlib.metadata import entry_points

import numpy as np
import pytest
from ann_data import subspace_vectors

from memosd.plugins.api import VectorBackend
from memosd.plugins.builtin import NumpyBackend
from memosd_ann import HnswBackend

DIM = 256


def ann(dim: int = DIM, **kw) -> HnswBackend:
    """A backend that always takes the graph path (no brute-force shortcut for small indexes)."""
    kw.setdefault("exact_below", 0)
    kw.setdefault("exact_fraction", 0.0)
    return HnswBackend(dim, **kw)


def both(vectors: np.ndarray, **kw) -> tuple[HnswBackend, NumpyBackend]:
    keys = np.arange(len(vectors), dtype=np.int64)
    mine, ref = HnswBackend(vectors.shape[1], **kw), NumpyBackend(vectors.shape[1])
    mine.add(keys, vectors)
    ref.add(keys, vectors)
    return mine, ref


def assert_same(a, b):
    assert np.array_equal(a[0], b[0]), (a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-5, atol=1e-6)


def test_protocol_and_the_daemons_load_probe():
    backend = HnswBackend(4)
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


@pytest.mark.parametrize("graph", [False, True])
def test_exact_scores_and_key_tie_break(graph):
    rng = np.random.default_rng(3)
    base = subspace_vectors(300, dim=32, subspace=8, seed=4)
    vectors = np.concatenate([base, base[:50], base[:50]])  # exact duplicates: equal scores
    kw = {"exact_below": 0, "exact_fraction": 0.0} if graph else {}
    mine, ref = both(vectors, **kw)
    for q in rng.choice(len(base), 20, replace=False):
        for k in (1, 5, 10, 40):
            got, want = mine.search(base[q], k), ref.search(base[q], k)
            if graph:  # candidates may miss, but every returned score is exact and ordered
                np.testing.assert_allclose(got[1], vectors[got[0]] @ base[q], rtol=1e-5, atol=1e-6)
                assert all((a > b) or (a == b and ka < kb) for (ka, a), (kb, b) in zip(zip(*got), list(zip(*got))[1:]))
                assert got[0][0] == want[0][0]
            else:
                assert_same(got, want)


def test_recall_at_10_vs_exact_on_embedding_shaped_data():
    data = subspace_vectors(20_000, seed=0)
    queries = subspace_vectors(200, seed=1)
    backend = ann()
    for start in range(0, len(data), 4096):  # batches, as the daemon adds them
        backend.add(np.arange(start, min(start + 4096, len(data)), dtype=np.int64), data[start : start + 4096])
    truth = np.argpartition(-(queries @ data.T), 10, axis=1)[:, :10]
    hits = sum(len(set(backend.search(q, 10)[0].tolist()) & set(t.tolist())) for q, t in zip(queries, truth))
    recall = hits / (10 * len(queries))
    assert recall >= 0.98, recall


def test_ef_search_grows_with_the_index_unless_pinned(monkeypatch):
    backend = HnswBackend(8)
    for live, ef in [(5_000, 256), (100_000, 256), (200_000, 320), (1_000_000, 512), (10_000_000, 1024)]:
        backend._live = live
        assert backend.effective_ef_search(10) == ef
    assert backend.effective_ef_search(300) == 1200  # never below the candidates it must return
    backend = HnswBackend(8, ef_search=100)
    backend._live = 1_000_000
    assert backend.effective_ef_search(10) == 100
    monkeypatch.setenv("MEMOSD_ANN_EF_SEARCH", "384")
    assert HnswBackend(8).effective_ef_search(10) == 384


@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("compact_below", [4096, 0])
def test_removed_and_replaced_keys(graph, compact_below):
    data = subspace_vectors(3000, dim=64, subspace=16, seed=5)
    backend = ann(64, compact_below=compact_below) if graph else HnswBackend(64, compact_below=compact_below)
    backend.add(np.arange(3000, dtype=np.int64), data)
    removed = np.arange(0, 3000, 2, dtype=np.int64)
    backend.remove(removed)  # 1,500 retired of 3,000 slots: rebuilt, unless compact_below forbids it
    assert backend._index.ntotal == (1500 if compact_below else 3000)
    backend.remove(np.array([1, 1, 5000], dtype=np.int64))  # repeated and unknown keys
    assert len(backend) == 1499
    gone = set(removed.tolist()) | {1}
    for q in data[:100]:
        keys, _ = backend.search(q, 10)
        assert len(keys) == 10 and not gone & set(keys.tolist())
    # The removed vectors themselves are no longer found even as exact matches.
    assert backend.search(data[0], 1)[0][0] != 0
    # Replacing a key: its old vector is forgotten, the new one is found with its exact score.
    backend.add(np.array([3], dtype=np.int64), data[0:1])
    keys, scores = backend.search(data[0], 1)
    assert keys.tolist() == [3] and scores[0] == pytest.approx(1.0, abs=1e-5)
    keys, scores = backend.search(data[3], 1499)
    assert scores[keys.tolist().index(3)] == pytest.approx(float(data[0] @ data[3]), abs=1e-5)
    # Re-adding a removed key brings it back.
    backend.add(np.array([0], dtype=np.int64), data[0:1])
    assert set(backend.search(data[0], 2)[0].tolist()) == {0, 3}
    assert len(backend) == 1500


@pytest.mark.parametrize("allowed_count", [0, 1, 3, 30, 2500])
def test_allowed_masks_including_tiny_ones(allowed_count):
    data = subspace_vectors(5000, dim=64, subspace=16, seed=6)
    rng = np.random.default_rng(allowed_count)
    allowed = np.zeros(5000, dtype=bool)
    allowed[rng.choice(5000, allowed_count, replace=False)] = True
    # exact_fraction=0 forces the filtered graph search for the larger sets; tiny ones fall back to exact.
    mine, ref = both(data, exact_below=50, exact_fraction=0.0)
    for q in data[:40]:
        got, want = mine.search(q, 10, allowed=allowed), ref.search(q, 10, allowed=allowed)
        assert allowed[got[0]].all()
        assert len(got[0]) == min(10, allowed_count)
        if allowed_count <= 50:
            assert_same(got, want)  # brute force over the allowed keys: exact
        else:
            assert got[0][0] == want[0][0]


def test_allowed_mask_shorter_than_keys_and_removed_keys():
    data = subspace_vectors(4000, dim=64, subspace=16, seed=7)
    mine, ref = both(data, exact_below=0, exact_fraction=0.0)
    mine.remove(np.arange(0, 100, dtype=np.int64))
    ref.remove(np.arange(0, 100, dtype=np.int64))
    allowed = np.ones(2000, dtype=bool)  # keys 2000.. are past its end: never returned
    for q in data[:50]:
        got = mine.search(q, 10, allowed=allowed)
        assert (got[0] >= 100).all() and (got[0] < 2000).all()
        assert got[0][0] == ref.search(q, 10, allowed=allowed)[0][0]


def test_a_filter_allowing_most_keys_filters_the_graphs_candidates():
    data = subspace_vectors(5000, dim=64, subspace=16, seed=8)
    allowed = np.random.default_rng(8).random(5000) < 0.9
    mine, ref = both(data, exact_below=50, exact_fraction=0.0)
    searched_within: list[bool] = []
    graph_candidates = mine._graph_candidates
    mine._graph_candidates = lambda q, k, bitmap: searched_within.append(bitmap is not None) or graph_candidates(q, k, bitmap)
    hits = 0
    for q in data[:40]:
        got, want = mine.search(q, 10, allowed=allowed), ref.search(q, 10, allowed=allowed)
        assert allowed[got[0]].all() and len(got[0]) == 10
        np.testing.assert_allclose(got[1], data[got[0]] @ q, rtol=1e-5, atol=1e-6)
        hits += len(set(got[0].tolist()) & set(want[0].tolist()))
    assert searched_within == [False] * 40  # no pass over the mask, no filtered graph search
    assert hits >= 0.95 * 400
    # When the query's whole neighbourhood is filtered out, few candidates survive: it searches within the filter.
    q = data[0]
    near = np.argsort(-(data @ q))[:400]
    allowed = np.ones(5000, dtype=bool)
    allowed[near] = False
    searched_within.clear()
    got, want = mine.search(q, 10, allowed=allowed), ref.search(q, 10, allowed=allowed)
    assert searched_within == [False, True]
    assert allowed[got[0]].all() and len(got[0]) == 10 and got[0][0] == want[0][0]


def test_daemon_uses_the_hnsw_backend_for_dense_recall(tmp_path):
    if "hnsw" not in entry_points(group="memosd.backends").names:
        pytest.skip("the hnsw entry point is not installed: pip install -e plugins/memosd-ann")
    from memosd.testing import DaemonProcess
    from memosd_client.protocol import messages as m

    env = {"MEMOSD_PLUGINS_ENCODER": "hash-dense", "MEMOSD_PLUGINS_BACKEND": "hnsw"}
    with DaemonProcess(tmp_path / "store", env=env) as daemon:
        with daemon.admin() as admin:
            report = admin.request("plugins", m.PluginsArgs())
        mine = next(p for p in report.plugins if p.name == "hnsw")
        assert mine.status == "loaded", (mine.error, [p.error for p in report.plugins if p.error])
        assert report.dense, [p.error for p in report.plugins if p.error]
        with daemon.client(namespace="ann") as client:
            client.remember("the lighthouse keeper feeds the gulls at dawn")
            memory_id = client.remember("the harbour freezes over in January")
            # Vectors are computed in the background: wait until the dense channel has seen both.
            deadline = time.monotonic() + 10
            while True:
                hits = client.recall("harbour january")
                dense = {hit.memory.id for hit in hits if "dense" in hit.matched}
                if len(dense) == 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        assert hits[0].memory.id == memory_id and "dense" in hits[0].matched, daemon.log()[-2000:]


def test_the_graph_saved_at_a_clean_stop_is_opened_and_brought_up_to_date_after_a_kill(tmp_path):
    if "hnsw" not in entry_points(group="memosd.backends").names:
        pytest.skip("the hnsw entry point is not installed: pip install -e plugins/memosd-ann")
    from memosd.testing import DaemonProcess
    from memosd_client.protocol import messages as m

    def migration() -> m.MigrationInfo:
        with daemon.admin() as admin:
            return admin.request("plugins", m.PluginsArgs()).migration

    def embedded() -> m.MigrationInfo:
        deadline = time.monotonic() + 20
        while (found := migration()).queued and time.monotonic() < deadline:
            time.sleep(0.05)
        return found

    env = {"MEMOSD_PLUGINS_ENCODER": "hash-dense", "MEMOSD_PLUGINS_BACKEND": "hnsw"}
    daemon = DaemonProcess(tmp_path / "store", env=env)
    daemon.start()
    try:
        with daemon.client(namespace="ann") as client:
            ids = client.remember_many([f"harbour note {i}: boat {i} came in at dawn" for i in range(300)]).ids
        assert embedded().queued == 0
        daemon.stop()  # a clean stop saves the graph
        saved = daemon.data_dir / "indexes" / "dense"
        assert [p.name for p in saved.iterdir()] != [] and not any(p.name.endswith(".tmp") for p in saved.iterdir())

        daemon.start()
        opened = migration()
        assert (opened.vectors_opened, opened.vectors_loaded) == (300, 0), "opened, not built again"
        with daemon.client(namespace="ann") as client:
            client.purge(ids[0])
            new = client.remember_many([f"lantern {i} on the pier" for i in range(20)]).ids
            assert embedded().queued == 0
            daemon.kill()  # no save: the next start finds the graph of the last clean stop

        daemon.start()
        after = migration()
        # 299 of the saved vectors are still the store's, 20 were written since; the purged one is removed.
        assert (after.vectors_opened, after.vectors_loaded) == (299, 20)
        with daemon.client(namespace="ann") as client:
            hits = client.recall("lantern pier", k=20)
            assert {h.memory.id for h in hits if "dense" in h.matched} == set(new)
            assert all(h.memory.id != ids[0] for h in client.recall("harbour note 0 boat 0", k=50))
            client.remember_many([f"gull {i} over the breakwater" for i in range(400)])
            assert embedded().queued == 0
            daemon.kill()

        daemon.start()
        # Over half of the 719 vectors are not in the saved graph: it is built from the store instead.
        rebuilt = migration()
        assert (rebuilt.vectors_opened, rebuilt.vectors_loaded) == (0, 719)
        with daemon.client(namespace="ann") as client:
            assert any("dense" in h.matched for h in client.recall("gull breakwater"))
            header = next(saved.iterdir()) / "header.json"
            before = header.stat().st_mtime_ns
            with daemon.admin() as admin:  # a snapshot while serving saves the graph too
                admin.request("snapshot", m.SnapshotArgs())
                after_first = header.stat().st_mtime_ns
                admin.request("snapshot", m.SnapshotArgs())  # nothing changed since: not written again
            assert before < after_first == header.stat().st_mtime_ns
            late = client.remember_many([f"buoy {i} rings in the fog" for i in range(10)]).ids
            assert embedded().queued == 0
            daemon.kill()

        daemon.start()
        resumed = migration()
        assert (resumed.vectors_opened, resumed.vectors_loaded) == (719, 10), "only what followed the snapshot"
        with daemon.client(namespace="ann") as client:
            assert {h.memory.id for h in client.recall("buoy fog", k=10) if "dense" in h.matched} == set(late)
    finally:
        daemon.cleanup()
