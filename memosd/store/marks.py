"""Write marks: which namespaces each commit changed, kept in the store beside the change itself.

Every per-namespace key of the sub-databases that the in-RAM indexes are built from starts with the
namespace's 4-byte id (store/keys.py), so the puts and deletes of a write job name the namespaces it
changed. The writer hands each job a :class:`RecordingTxn`, and at commit it stores one fresh random
mark under ``ns_write:<id>`` for every namespace the commit changed, in the same transaction.

So a namespace's mark changes with every write to it, by whatever path (a remember, a purge, the
scheduler forming a page), and only then. The engine keeps the mark of the last write it applied in
RAM for each namespace; an index snapshot records those, and a start opens a namespace from the
snapshot only if its mark is still the store's (engine/snapshot.py). Marks are random, not counters:
a restored backup that took other writes since cannot come back to a mark a snapshot holds.
"""

from __future__ import annotations

import lmdb

from .keys import ns_prefix

STORE_ID_KEY = "store_id"
"""Meta key of the store's random id: an index snapshot stands only for the store of that id. Whatever
rewrites records without the writer (``memosd migrate``) deletes it, since no mark vouches for that."""
TRACKED = ("memories", "pages", "knowledge")
"""The sub-databases the in-RAM indexes are built from."""
_PREFIX = b"ns_write:"


def mark_key(ns_id: int) -> bytes:
    return _PREFIX + ns_prefix(ns_id)


def store_marks(txn: lmdb.Transaction, meta, prefixes: set[bytes], mark: bytes) -> None:
    """Give every namespace in ``prefixes`` (4-byte ids) the commit's ``mark``."""
    for prefix in prefixes:
        txn.put(_PREFIX + prefix, mark, db=meta)


def read(txn: lmdb.Transaction, meta, ns_id: int) -> bytes | None:
    """The namespace's current mark (None: not written since marks were kept)."""
    raw = txn.get(mark_key(ns_id), db=meta)
    return None if raw is None else bytes(raw)


def drop(txn: lmdb.Transaction, meta, ns_id: int) -> None:
    txn.delete(mark_key(ns_id), db=meta)


class RecordingTxn:
    """A write transaction that notes the namespace of every key it puts or deletes in ``tracked``.

    Everything else goes to the transaction as is."""

    __slots__ = ("_txn", "_tracked", "touched")

    def __init__(self, txn: lmdb.Transaction, tracked: frozenset):
        self._txn = txn
        self._tracked = tracked
        self.touched: set[bytes] = set()

    def put(self, key, value, *args, db=None, **kwargs):
        if db in self._tracked:
            self.touched.add(bytes(key[:4]))
        return self._txn.put(key, value, *args, db=db, **kwargs)

    def replace(self, key, value, db=None):
        if db in self._tracked:
            self.touched.add(bytes(key[:4]))
        return self._txn.replace(key, value, db=db)

    def delete(self, key, *args, db=None, **kwargs):
        if db in self._tracked:
            self.touched.add(bytes(key[:4]))
        return self._txn.delete(key, *args, db=db, **kwargs)

    def pop(self, key, db=None):
        if db in self._tracked:
            self.touched.add(bytes(key[:4]))
        return self._txn.pop(key, db=db)

    def cursor(self, db=None):
        cursor = self._txn.cursor(db=db)
        return _RecordingCursor(cursor, self.touched) if db in self._tracked else cursor

    def drop(self, db, delete=True):
        if db in self._tracked:
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

    __slots__ = ("_cursor", "_touched")

    def __init__(self, cursor: lmdb.Cursor, touched: set[bytes]):
        self._cursor = cursor
        self._touched = touched

    def put(self, key, value, *args, **kwargs):
        self._touched.add(bytes(key[:4]))
        return self._cursor.put(key, value, *args, **kwargs)

    def replace(self, key, value):
        self._touched.add(bytes(key[:4]))
        return self._cursor.replace(key, value)

    def delete(self, *args, **kwargs):
        if self._cursor.key():
            self._touched.add(bytes(self._cursor.key()[:4]))
        return self._cursor.delete(*args, **kwargs)

    def pop(self, key):
        self._touched.add(bytes(key[:4]))
        return self._cursor.pop(key)

    def putmulti(self, items, *args, **kwargs):
        items = list(items)
        self._touched.update(bytes(key[:4]) for key, _ in items)
        return self._cursor.putmulti(items, *args, **kwargs)

    def __iter__(self):
        return iter(self._cursor)

    def __getattr__(self, name):
        return getattr(self._cursor, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._cursor.__exit__(*exc)
