"""The LMDB environment: one per data dir, opened defensively.

- An exclusive lock file stops two daemons from opening the same store.
- The schema version is checked: a newer store is refused, never rewritten.
- Stale reader slots left by a killed process are cleared at start.
- The map grows (doubling, up to a ceiling) when a write hits MapFullError.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import lmdb
import msgspec

SCHEMA_VERSION = 1
"""Version of the on-disk layout written by this memosd."""

SUBDATABASES = (b"meta", b"namespaces", b"memories", b"idempotency", b"principals", b"vectors",
                b"pages", b"knowledge", b"changes")


class StoreError(Exception):
    """The store cannot be opened or used (with a message meant for an operator)."""


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: Path
    map_size: int = 1 << 30
    max_map_size: int = 1 << 40
    durable: bool = True
    """fsync every commit (the default). False keeps commits in the OS page cache:
    they survive a process crash but not a power loss or kernel crash."""


class Environment:
    """An open LMDB environment with memosd's sub-databases."""

    def __init__(self, config: StoreConfig, *, allow_older_schema: bool = False):
        """Open (or create) the store; ``allow_older_schema`` is for the migrator only."""
        self.config = config
        self.path = config.path
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_file = self._take_lock(self.path / "memosd.lock")
        data_file = self.path / "data.mdb"
        if data_file.exists() and data_file.stat().st_size > 0:
            self._check_lmdb_file(data_file)
        self.resize_lock = threading.RLock()
        """Held by readers around a read transaction and by the writer while it grows the map
        (LMDB forbids changing the map size while a transaction of this process is open)."""
        try:
            self.env = lmdb.open(
                str(self.path),
                map_size=config.map_size,
                max_dbs=len(SUBDATABASES) + 4,
                max_readers=256,
                subdir=True,
                sync=config.durable,
                metasync=config.durable,
                readahead=False,
                lock=True,
            )
        except lmdb.Error as exc:
            raise StoreError(f"cannot open store at {self.path}: {exc}") from exc
        self.env.reader_check()
        self.dbs = {name.decode(): self.env.open_db(name) for name in SUBDATABASES}
        try:
            self.schema_version = self._check_schema(allow_older_schema)
        except StoreError:
            self.close()  # a refused store must not stay locked by an in-process caller (the migrator)
            raise

    # ------------------------------------------------------------------ opening

    @staticmethod
    def _take_lock(path: Path):
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StoreError(f"store {path.parent} is already in use by another memosd process") from None
        return handle

    @staticmethod
    def _check_lmdb_file(data_file: Path) -> None:
        # Pages 0 and 1 are LMDB's meta pages: the magic 0xBEEFC0DE at offset 16, the page size at
        # 40, the last page in use at 136 and the transaction id at 144. LMDB maps the file and
        # trusts the newest meta page, so a file cut short below its last page would make the first
        # read past the end kill the daemon with SIGBUS: refuse it here with a message instead.
        size = data_file.stat().st_size
        with open(data_file, "rb") as fh:
            first = fh.read(152)
            if not _has_magic(first):
                raise StoreError(f"{data_file} is not an LMDB data file; refusing to touch it")
            psize = int.from_bytes(first[40:44], "little") if len(first) == 152 else 0
            second = b""
            if psize in _PAGE_SIZES:
                fh.seek(psize)
                second = fh.read(152)
        if len(second) < 152 or not _has_magic(second) or size < 2 * psize:
            raise StoreError(f"{data_file} is truncated or damaged ({size:,} bytes; an LMDB meta page is missing "
                             "or invalid); refusing to touch it: restore it from a backup")
        newest = max((first, second), key=lambda meta: int.from_bytes(meta[144:152], "little"))
        needed = (int.from_bytes(newest[136:144], "little") + 1) * psize
        if size < needed:
            raise StoreError(f"{data_file} is truncated: {size:,} bytes, but its last committed transaction "
                             f"uses {needed:,}; refusing to touch it: restore it from a backup")

    def _check_schema(self, allow_older: bool) -> int:
        with self.env.begin(write=True, db=self.dbs["meta"]) as txn:
            raw = txn.get(b"schema_version")
            if raw is None:
                txn.put(b"schema_version", msgspec.msgpack.encode(SCHEMA_VERSION))
                txn.put(b"created_at", msgspec.msgpack.encode(time.time()))
                return SCHEMA_VERSION
            found = msgspec.msgpack.decode(raw)
        if not isinstance(found, int):
            raise StoreError(f"store {self.path} has an unreadable schema version")
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {found}, newer than this memosd "
                f"understands ({SCHEMA_VERSION}); upgrade memosd"
            )
        if found < SCHEMA_VERSION and not allow_older:
            raise StoreError(f"store {self.path} has schema version {found}; run `memosd migrate`")
        return found

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str):
        with self.read() as txn:
            raw = txn.get(key.encode(), db=self.dbs["meta"])
        return None if raw is None else msgspec.msgpack.decode(raw)

    def put_meta(self, key: str, value) -> None:
        with self.env.begin(write=True, db=self.dbs["meta"]) as txn:
            txn.put(key.encode(), msgspec.msgpack.encode(value))

    # ------------------------------------------------------------------ transactions

    def read(self) -> "ReadTxn":
        """A short read transaction (context manager); safe against concurrent map growth."""
        return ReadTxn(self)

    def grow(self) -> bool:
        """Double the map size; False when the ceiling is reached."""
        current = self.env.info()["map_size"]
        if current >= self.config.max_map_size:
            return False
        with self.resize_lock:
            self.env.set_mapsize(min(current * 2, self.config.max_map_size))
        return True

    def usage(self) -> tuple[int, int]:
        """(bytes used by pages, current map size)."""
        info = self.env.info()
        stat = self.env.stat()
        return (info["last_pgno"] + 1) * stat["psize"], info["map_size"]

    def file_bytes(self) -> int:
        try:
            return os.path.getsize(self.path / "data.mdb")
        except OSError:
            return 0

    def close(self) -> None:
        self.env.close()
        self._lock_file.close()


_PAGE_SIZES = {1 << n for n in range(9, 17)}
"""Page sizes LMDB can have written (512 bytes to 64 KiB: the OS page size where it was created)."""


def _has_magic(page_head: bytes) -> bool:
    """True when these first bytes of a page carry LMDB's meta page magic (LMDB checks the version)."""
    return len(page_head) >= 20 and int.from_bytes(page_head[16:20], "little") == 0xBEEFC0DE


class ReadTxn:
    __slots__ = ("_env", "_txn")

    def __init__(self, env: Environment):
        self._env = env
        self._txn = None

    def __enter__(self) -> lmdb.Transaction:
        self._env.resize_lock.acquire()
        try:
            self._txn = self._env.env.begin(buffers=False)
        except BaseException:
            self._env.resize_lock.release()
            raise
        return self._txn

    def __exit__(self, *exc) -> None:
        try:
            self._txn.abort()
        finally:
            self._env.resize_lock.release()
