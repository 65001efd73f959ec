"""The change log (store/marks.py): what each commit changed, per namespace, read back as a tail."""

from __future__ import annotations

import asyncio

from memosd.store import Environment, StoreConfig, WriterThread, keys, marks
from memosd.tiers import records


def run_jobs(env: Environment, jobs: list) -> None:
    writer = WriterThread(env)
    writer.keep_log = True

    async def main():
        writer.start()
        for job in jobs:  # one commit each
            await writer.submit(job)

    try:
        asyncio.run(main())
    finally:
        writer.stop()


def test_the_tail_after_a_mark_names_every_record_changed_since_with_the_deleted_ones_as_they_were(tmp_path):
    env = Environment(StoreConfig(path=tmp_path / "store"))
    memories, pages, knowledge, log = (env.dbs[name] for name in ("memories", "pages", "knowledge", "changes"))

    def put(ns_id, *ids):
        return lambda txn: [txn.put(keys.memory_key(ns_id, i), f"record {i}".encode(), db=memories) for i in ids]

    def purge_one(txn):
        txn.delete(keys.memory_key(3, 2), db=memories)
        txn.put(records.page_key(3, 7), b"page", db=pages)
        txn.put(records.fact_key(3, 8, 0), b"fact", db=knowledge)

    def purge_range(txn):  # a cursor's deletes, as a namespace purge does them
        keys.delete_prefix(txn, memories, keys.ns_prefix(3))

    run_jobs(env, [put(3, 1, 2), put(4, 1), put(3, 5), purge_one, put(3, 9), purge_range])
    with env.read() as txn:
        mark, seq = marks.read(txn, env.dbs["meta"], 3)
        assert seq == 5 and marks.read(txn, env.dbs["meta"], 4)[1] == 1
        first = marks.tail(txn, log, 3, (None, 0), seq)
        assert first is None  # nothing logged is "before the first write"
        with txn.cursor(db=log) as cursor:
            entries = [(keys.unpack_ns(k[:4]), marks._entry_decoder.decode(v)) for k, v in cursor]
        assert [e.memories for ns, e in entries if ns == 3][:2] == [[1, 2], [5, 5]]  # ids go as runs
        since = (entries[0][1].mark, 1)  # as a snapshot taken after the first commit would hold it
        changes, count = marks.tail(txn, log, 3, since, seq)
        assert count == 4
        assert changes.memories == {1, 2, 5, 9} and changes.pages == {7, 8}  # a fact names its page
        assert changes.deleted == {2: b"record 2", 1: b"record 1", 5: b"record 5", 9: b"record 9"}
        assert marks.tail(txn, log, 3, (b"another!", 1), seq) is None  # another history
        assert marks.tail(txn, log, 3, since, seq + 1) is None  # the log stops short
    with env.env.begin(write=True) as txn:
        assert marks.truncate(txn, log, {3: 3}) == 3  # ns 3's entries 1 and 2, and all of ns 4's
    with env.read() as txn:
        assert marks.tail(txn, log, 3, since, seq) is None  # the anchor is gone
        later = marks.read_entry(txn, log, 3, 3)
        changes, count = marks.tail(txn, log, 3, (later.mark, 3), seq)
        assert count == 2 and changes.memories == {1, 5, 9}
    env.close()


def test_a_commit_naming_too_many_records_is_logged_as_a_reset(tmp_path, monkeypatch):
    monkeypatch.setattr(marks, "RESET_OVER", 3)
    env = Environment(StoreConfig(path=tmp_path / "store"))
    memories, log = env.dbs["memories"], env.dbs["changes"]
    run_jobs(env, [lambda txn: txn.put(keys.memory_key(3, 1), b"r", db=memories),
                   lambda txn: [txn.put(keys.memory_key(3, i), b"r", db=memories) for i in range(2, 8)]])
    with env.read() as txn:
        first = marks.read_entry(txn, log, 3, 1)
        assert marks.read_entry(txn, log, 3, 2).reset
        assert marks.tail(txn, log, 3, (first.mark, 1), 2) is None  # a reset cannot be replayed
    env.close()


def test_a_tail_of_many_entries_names_every_record_however_many(tmp_path, monkeypatch):
    # A tail once turned into a "reset" (naming nothing) past the limit meant for one commit's entry,
    # and the start then opened the snapshot without the writes of the tail.
    monkeypatch.setattr(marks, "RESET_OVER", 5)
    env = Environment(StoreConfig(path=tmp_path / "store"))
    memories, log = env.dbs["memories"], env.dbs["changes"]

    def put(*ids):
        return lambda txn: [txn.put(keys.memory_key(3, i), b"r", db=memories) for i in ids]

    run_jobs(env, [put(0)] + [put(*range(4 * n + 1, 4 * n + 5)) for n in range(10)])
    with env.read() as txn:
        first = marks.read_entry(txn, log, 3, 1)
        changes, count = marks.tail(txn, log, 3, (first.mark, 1), 11)
    assert count == 10 and not changes.reset and changes.memories == set(range(1, 41))
    env.close()
