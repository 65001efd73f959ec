"""Write marks and the change log: which records of which namespace each commit changed.

Every per-namespace key of the sub-databases that the in-RAM indexes are built from (``memories``,
``pages``, ``knowledge``) starts with the namespace's 4-byte id and then the 8-byte id of a memory or
a page (store/keys.py, tiers/records.py), so the puts and deletes of a write job say exactly what it
changed. The writer hands each job a :class:`RecordingTxn`; at commit, in the same transaction, for
every namespace the commit changed it

- stores a fresh random **mark** and the namespace's next **sequence number** under
  ``meta/ns_write:<id>``: the mark changes with every write to the namespace, by whatever path (a
  remember, a purge, the scheduler forming a page), and only then;
- when the change log is kept, appends an **entry** under ``changes/<id><seq>``: the mark, the memory
  and page ids changed, and the records of the memories it deleted as they were (taking a purged
  memory out of the indexes needs its text).

The engine keeps, per namespace, the mark and sequence number of the last write it applied in RAM. An
index snapshot records them; at the next start a namespace whose mark is still the store's is opened
from the snapshot as it is, and one written since is brought forward from the log entries after its
sequence number (engine/replay.py), or rebuilt when the log does not reach back to it. Marks are
random, not counters: a restored backup that took other writes since cannot come back to a mark a
snapshot holds. Entries older than the snapshot on disk are deleted (``truncate``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import lmdb
import msgspec

from .keys import ns_prefix

STORE_ID_KEY = "store_id"
"""Meta key of the store's random id: an index snapshot stands only for the store of that id. Whatever
rewrites records without the writer (``memosd migrate``) deletes it, since no mark vouches for that."""
TRACKED = {"memories": "memories", "pages": "pages", "knowledge": "pages"}
"""The sub-databases the in-RAM indexes are built from, and which ids their keys carry."""
RESET_OVER = 100_000
"""A commit naming more records than this (a namespace purge) is logged as a "reset" instead: replaying
it would cost what a rebuild costs, and the entry would be as large as the namespace. (Only one
commit's entry: a tail of many entries names as many records as it takes.)"""
_PREFIX = b"ns_write:"
_ID = struct.Struct(">Q")
_MARK = struct.Struct(">8sQ")


@dataclass(slots=True)
class Changes:
    """What a commit, or a run of them, changed in one namespace."""

    memories: set[int] = field(default_factory=set)
    pages: set[int] = field(default_factory=set)
    deleted: dict[int, bytes] = field(default_factory=dict)
    """Memory id -> its record as it was before it was deleted (the first image wins)."""
    reset: bool = False

    def merge(self, other: "Changes") -> None:
        """Add ``other``'s changes (a reset stays a reset: it names no records)."""
        if self.reset or other.reset:
            self.make_reset()
            return
        self.memories |= other.memories
        self.pages |= other.pages
        for memory_id, before in other.deleted.items():
            self.deleted.setdefault(memory_id, before)

    def size(self) -> int:
        """How many records a replay of these changes visits (a reset: as many as it stood for)."""
        return RESET_OVER if self.reset else len(self.memories) + len(self.pages)

    def make_reset(self) -> None:
        self.memories, self.pages, self.deleted, self.reset = set(), set(), {}, True


class Entry(msgspec.Struct, array_like=True):
    """One commit's changes to one namespace, as logged. Ids go as runs (``[first, last, first, last,
    ...]``): a batch of new memories has consecutive ids, so its entry stays a few bytes."""

    mark: bytes
    memories: list[int] = []
    pages: list[int] = []
    deleted: dict[int, bytes] = {}
    reset: bool = False

    def changes(self) -> Changes:
        return Changes(_ids(self.memories), _ids(self.pages), dict(self.deleted), self.reset)


def _runs(ids: set[int]) -> list[int]:
    out: list[int] = []
    for record_id in sorted(ids):
        if out and record_id == out[-1] + 1:
            out[-1] = record_id
        else:
            out += (record_id, record_id)
    return out


def _ids(runs: list[int]) -> set[int]:
    out: set[int] = set()
    for first, last in zip(runs[::2], runs[1::2]):
        out.update(range(first, last + 1))
    return out


_entry_decoder = msgspec.msgpack.Decoder(Entry)
_encode = msgspec.msgpack.Encoder().encode


def mark_key(ns_id: int) -> bytes:
    return _PREFIX + ns_prefix(ns_id)


def read(txn: lmdb.Transaction, meta, ns_id: int) -> tuple[bytes | None, int]:
    """The namespace's current mark and sequence number ((None, 0): not written since marks were kept)."""
    raw = txn.get(mark_key(ns_id), db=meta)
    if raw is None:
        return None, 0
    mark, seq = _MARK.unpack(raw)
    return mark, seq


def commit_marks(txn: lmdb.Transaction, meta, log, changed: dict[bytes, Changes], mark: bytes) -> dict[bytes, int]:
    """Give every namespace in ``changed`` (by 4-byte id) the commit's ``mark`` and its next sequence
    number, and log the entry when ``log`` (the ``changes`` sub-database) is given; returns the numbers."""
    seqs = {}
    for prefix, changes in changed.items():
        raw = txn.get(_PREFIX + prefix, db=meta)
        seq = 1 if raw is None else _MARK.unpack(raw)[1] + 1
        txn.put(_PREFIX + prefix, _MARK.pack(mark, seq), db=meta)
        seqs[prefix] = seq
        if log is not None:
            if changes.reset or changes.size() > RESET_OVER:  # one commit's jobs together may be too
                entry = Entry(mark, reset=True)
            else:
                entry = Entry(mark, _runs(changes.memories), _runs(changes.pages), changes.deleted)
            txn.put(prefix + _ID.pack(seq), _encode(entry), db=log)
    return seqs


def read_entry(txn: lmdb.Transaction, log, ns_id: int, seq: int) -> Entry | None:
    raw = txn.get(ns_prefix(ns_id) + _ID.pack(seq), db=log)
    return None if raw is None else _entry_decoder.decode(raw)


def tail(txn: lmdb.Transaction, log, ns_id: int, since: tuple[bytes | None, int], until: int) -> tuple[Changes, int] | None:
    """The changes of the entries after ``since`` (a mark and its sequence number) up to ``until``, and
    how many entries that was; None when the log cannot say: the entry of ``since`` is not there with
    that mark (another history, or truncated), an entry is missing, or one is a reset."""
    mark, seq = since
    prefix = ns_prefix(ns_id)
    cursor = txn.cursor(db=log)
    if mark is None or not cursor.set_key(prefix + _ID.pack(seq)) or _entry_decoder.decode(cursor.value()).mark != mark:
        return None
    total, expected = Changes(), seq + 1
    while cursor.next() and cursor.key().startswith(prefix) and expected <= until:
        if _ID.unpack(cursor.key()[4:12])[0] != expected:
            return None
        entry = _entry_decoder.decode(cursor.value())
        if entry.reset:
            return None
        total.merge(entry.changes())
        expected += 1
    if expected != until + 1:
        return None
    return total, until - seq


def truncate(txn: lmdb.Transaction, log, keep_from: dict[int, int]) -> int:
    """Delete the entries no snapshot needs any more: those of a namespace before ``keep_from[ns_id]``
    (the sequence number the snapshot on disk holds it at; that entry stays, as the anchor ``tail``
    checks), and every entry of a namespace the snapshot does not hold. Returns how many."""
    cursor = txn.cursor(db=log)
    deleted = 0
    if not cursor.first():
        return 0
    while True:
        key = cursor.key()
        if not key:  # the last entry was deleted
            break
        ns_id, seq = struct.unpack(">IQ", key[:12])
        if seq < keep_from.get(ns_id, 1 << 63):
            deleted += 1
            if not cursor.delete():
                break
        elif not cursor.next():
            break
    return deleted


class RecordingTxn:
    """A write transaction that notes which records of which namespace it puts or deletes in the
    tracked sub-databases (``dbs``: sub-database -> "memories" or "pages"), and keeps the records of
    the memories it deletes as they were. Everything else goes to the transaction as is."""

    __slots__ = ("_txn", "_dbs", "touched")

    def __init__(self, txn: lmdb.Transaction, dbs: dict):
        self._txn = txn
        self._dbs = dbs
        self.touched: dict[bytes, Changes] = {}

    def note(self, kind: str, key: bytes, before=None) -> None:
        prefix = key[:4]
        changes = self.touched.get(prefix)
        if changes is None:
            changes = self.touched[bytes(prefix)] = Changes()
        if changes.reset:
            return
        record_id = int.from_bytes(key[4:12], "big")
        if kind == "memories":
            changes.memories.add(record_id)
            if before is not None:
                changes.deleted.setdefault(record_id, bytes(before))
        else:
            changes.pages.add(record_id)
        if len(changes.memories) + len(changes.pages) > RESET_OVER:
            changes.make_reset()

    def get(self, key, default=None, db=None):
        return self._txn.get(key, default, db)

    def put(self, key, value, dupdata=True, overwrite=True, append=False, db=None):
        kind = self._dbs.get(db)
        if kind is not None:
            self.note(kind, key)
        return self._txn.put(key, value, dupdata, overwrite, append, db)

    def replace(self, key, value, db=None):
        kind = self._dbs.get(db)
        if kind is not None:
            self.note(kind, key)
        return self._txn.replace(key, value, db=db)

    def delete(self, key, *args, db=None, **kwargs):
        kind = self._dbs.get(db)
        if kind is not None:
            self.note(kind, key, self._txn.get(key, db=db) if kind == "memories" else None)
        return self._txn.delete(key, *args, db=db, **kwargs)

    def pop(self, key, db=None):
        kind = self._dbs.get(db)
        if kind is not None:
            self.note(kind, key, self._txn.get(key, db=db) if kind == "memories" else None)
        return self._txn.pop(key, db=db)

    def cursor(self, db=None):
        cursor = self._txn.cursor(db=db)
        kind = self._dbs.get(db)
        return cursor if kind is None else _RecordingCursor(cursor, self, kind)

    def drop(self, db, delete=True):
        if db in self._dbs:
            raise ValueError("a write job may not drop a whole namespaced sub-database")
        return self._txn.drop(db, delete=delete)

    def __getattr__(self, name):
        return getattr(self._txn, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._txn.__exit__(*exc)


class _RecordingCursor:
    """A cursor of a tracked sub-database: its writes are noted like the transaction's."""

    __slots__ = ("_cursor", "_txn", "_kind")

    def __init__(self, cursor: lmdb.Cursor, txn: RecordingTxn, kind: str):
        self._cursor = cursor
        self._txn = txn
        self._kind = kind

    def put(self, key, value, *args, **kwargs):
        self._txn.note(self._kind, key)
        return self._cursor.put(key, value, *args, **kwargs)

    def replace(self, key, value):
        self._txn.note(self._kind, key)
        return self._cursor.replace(key, value)

    def delete(self, *args, **kwargs):
        key = self._cursor.key()
        if key:
            self._txn.note(self._kind, key, self._cursor.value() if self._kind == "memories" else None)
        return self._cursor.delete(*args, **kwargs)

    def pop(self, key):
        self._txn.note(self._kind, key, self._cursor.get(key) if self._kind == "memories" else None)
        return self._cursor.pop(key)

    def putmulti(self, items, *args, **kwargs):
        items = list(items)
        for key, _ in items:
            self._txn.note(self._kind, key)
        return self._cursor.putmulti(items, *args, **kwargs)

    def __iter__(self):
        return iter(self._cursor)

    def __getattr__(self, name):
        return getattr(self._cursor, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._cursor.__exit__(*exc)
