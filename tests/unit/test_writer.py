"""The writer thread: one commit for a queue of jobs, indexing batched by key, state changed in commit order."""

from __future__ import annotations

import asyncio

import pytest

from memosd.store import Environment, StoreConfig, WriterThread
from memosd_client.protocol.errors import ConflictError, InternalError


def test_jobs_with_one_key_are_indexed_together_and_in_commit_order(tmp_path):
    env = Environment(StoreConfig(path=tmp_path / "store"))
    writer = WriterThread(env)
    seen: list[tuple] = []

    def job(n: int, key: str | None, fails: bool = False):
        def run(txn):
            if fails:
                raise ConflictError(f"job {n} conflicts")
            txn.put(f"k{n}".encode(), b"v", db=env.dbs["meta"])
            return n

        def apply(result):
            seen.append(("apply", result))
            return result

        return dict(run=run, apply=apply, index=lambda results: seen.append(("index", tuple(results))),
                    index_key=key)

    async def main():
        # Queued before the thread starts, so all of them land in one group.
        specs = [job(1, "a"), job(2, "a"), job(3, "a", fails=True), job(4, "a"), job(5, None), job(6, "a"),
                 job(7, "b"), job(8, "a")]
        futures = [writer.submit(**spec) for spec in specs]
        writer.start()
        return await asyncio.gather(*futures, return_exceptions=True)

    try:
        results = asyncio.run(main())
    finally:
        writer.stop()
        env.close()
    assert isinstance(results[2], ConflictError)
    assert [r for i, r in enumerate(results) if i != 2] == [1, 2, 4, 5, 6, 7, 8]
    assert writer.commits == 1 and writer.jobs == 8 and writer.groups.largest == 8
    assert seen == [
        ("index", (1, 2, 4)),  # the failed job 3 is left out, and does not split the run
        ("apply", 1), ("apply", 2), ("apply", 4),
        ("index", (5,)), ("apply", 5),  # a job without a key is indexed alone, between the runs
        ("index", (6,)), ("apply", 6),
        ("index", (7,)), ("apply", 7),
        ("index", (8,)), ("apply", 8),
    ]


def test_a_failing_index_step_fails_its_jobs_but_not_the_commit(tmp_path):
    env = Environment(StoreConfig(path=tmp_path / "store"))
    writer = WriterThread(env)

    def boom(results):
        raise RuntimeError("index bug")

    async def main():
        futures = [writer.submit(lambda txn, n=n: txn.put(f"x{n}".encode(), b"1", db=env.dbs["meta"]),
                                 index=boom, index_key="k") for n in range(3)]
        writer.start()
        return await asyncio.gather(*futures, return_exceptions=True)

    try:
        results = asyncio.run(main())
        with env.read() as txn:
            stored = [txn.get(f"x{n}".encode(), db=env.dbs["meta"]) for n in range(3)]
    finally:
        writer.stop()
        env.close()
    assert all(isinstance(r, InternalError) and "indexing failed" in r.message for r in results)
    assert stored == [b"1"] * 3  # durable all the same: the error says so


@pytest.mark.parametrize("size,bucket", [(1, 0), (2, 1), (3, 1), (4, 2), (511, 8), (512, 9), (4096, 9)])
def test_group_sizes_fall_in_power_of_two_buckets(size, bucket):
    from memosd.store.writer import GroupSizes

    groups = GroupSizes()
    groups.add(size)
    assert [count for _, count in groups.histogram()] == [int(i == bucket) for i in range(GroupSizes.BUCKETS)]
    assert groups.histogram()[bucket][0] <= size and groups.largest == size == groups.jobs


def test_each_commit_marks_the_namespaces_its_jobs_changed_and_reports_them_after_applying(tmp_path):
    from memosd.store import keys, marks

    env = Environment(StoreConfig(path=tmp_path / "store"))
    writer = WriterThread(env)
    memories, pages, meta = env.dbs["memories"], env.dbs["pages"], env.dbs["meta"]
    reported: list[tuple[bytes, dict, set]] = []
    writer.on_applied = lambda mark, ok, failed: reported.append((mark, ok, failed))

    def current(ns_id):
        with env.read() as txn:
            return marks.read(txn, meta, ns_id)[0]

    def put(db, ns_id, fails=False):
        def run(txn):
            txn.put(keys.memory_key(ns_id, 1), b"v", db=db)
            if fails:
                raise ConflictError("no")
        return run

    def purge(txn):  # a cursor's deletes count too (a namespace purge deletes its key range)
        keys.delete_prefix(txn, memories, keys.ns_prefix(3))

    def broken_apply(result):
        raise RuntimeError("the RAM update failed")

    async def main():
        # Queued before the thread starts, so that they land in one commit.
        futures = [writer.submit(put(memories, 4)), writer.submit(put(pages, 5)), writer.submit(put(memories, 6, fails=True)),
                   writer.submit(put(meta, 7)), writer.submit(put(pages, 8), marked=False)]
        writer.start()
        await asyncio.gather(*futures, return_exceptions=True)
        await writer.submit(put(memories, 3))
        first = current(3)
        await writer.submit(purge)
        await asyncio.gather(writer.submit(put(memories, 9), broken_apply), return_exceptions=True)
        return first

    try:
        first = asyncio.run(main())
        assert first is not None and len(first) == 8
        assert current(3) != first  # the purge gave it a new mark
        for absent in (6, 7, 8):  # failed, not a namespaced record, and unmarked
            assert current(absent) is None
        assert current(4) == current(5) not in (current(3), first)  # one commit, one mark
        assert current(9) is not None  # committed, though RAM did not follow
    finally:
        writer.stop()
        env.close()
    ids = [({keys.unpack_ns(p): seq for p, seq in ok.items()}, {keys.unpack_ns(p) for p in failed})
           for _, ok, failed in reported]
    # Each namespace's sequence numbers count its marked commits.
    assert ids == [({4: 1, 5: 1}, set()), ({3: 1}, set()), ({3: 2}, set()), ({}, {9})]
    assert reported[1][0] == first
