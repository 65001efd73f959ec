"""The in-RAM indexes of every namespace, written to disk and opened at the next start.

Rebuilding the indexes from LMDB costs tens of seconds per million memories (every text is tokenised,
parsed for time expressions and indexed again). So the daemon writes what it has in RAM to
``<data_dir>/indexes/snapshot.pickle``: at a clean stop, and while it runs (every
``store.checkpoint_interval_s`` when something was written, and on the admin operation ``snapshot``;
engine/checkpoint.py). The next start takes each namespace from it:

- every commit gives each namespace it changed a new random write mark and sequence number, in the
  same LMDB transaction, and logs what it changed (store/marks.py); the snapshot records, per
  namespace, the mark and number of the last write its RAM state had applied: a namespace whose mark
  in the store is still that one is opened from the snapshot as it is, one written since is brought
  forward from the logged changes after it (engine/replay.py), or rebuilt from the store alone when
  the log does not reach back to it (a restored backup of another history, a truncated log);
- the snapshot was written for this store (its ``store_id``), by the code, configuration, Python and
  numpy reading it (a fingerprint); otherwise every namespace is rebuilt.

So a snapshot can make a start faster but never change an answer, and a crash costs the replay of
what was written since the last snapshot. An unreadable file means a rebuild of everything.
The file lives in the data directory, which only the daemon's user can write; it is read with pickle,
so it must stay that way. What the snapshot leaves out is rebuilt on use: resident page vectors (they
fault back in under the budget), caches, and the counters since start.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import pickle
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..logs import get_logger
from ..store import marks
from ..store.environment import Environment

log = get_logger("memosd.snapshot")

FORMAT = 2
STORE_ID_KEY = marks.STORE_ID_KEY
_PACKAGE = Path(__file__).resolve().parent.parent
_STATE_CODE = ("engine", "retrieval", "temporal", "tiers")
"""Packages whose classes are in the snapshot: any change to their code makes older snapshots stale."""


@dataclass(frozen=True)
class Header:
    """What a snapshot was written from; compared before its body is read."""

    format: int
    fingerprint: str
    store_id: str
    marks: dict[str, tuple[int, bytes | None, int]]
    """Namespace name -> (its id, the write mark and sequence number of the last write its state had
    applied; store/marks.py)."""
    written_at: float = field(default_factory=time.time)


@dataclass
class Snapshot:
    """A snapshot read back: each namespace's state and the mark it was written at."""

    header: Header
    namespaces: dict

    def take(self, name: str, ns_id: int, mark: bytes | None):
        """The namespace's state if it was written at the store's current ``mark`` for it, else None."""
        recorded = self.header.marks.get(name)
        if recorded is None or recorded[:2] != (ns_id, mark):
            return None
        return self.namespaces.pop(name, None)

    def behind(self, name: str, ns_id: int):
        """The namespace's state and the (mark, sequence number) it holds, whatever the store's mark
        (to be brought forward from the change log), or None."""
        recorded = self.header.marks.get(name)
        if recorded is None or recorded[0] != ns_id or name not in self.namespaces:
            return None
        return self.namespaces.pop(name), (recorded[1], recorded[2])


def path_in(data_dir: Path) -> Path:
    return Path(data_dir) / "indexes" / "snapshot.pickle"


def fingerprint(*configs: object) -> str:
    """A digest of the code that defines the snapshot's classes, the configurations given, and the
    versions of memosd, Python and numpy."""
    digest = hashlib.sha256()
    for part in (str(FORMAT), __version__, sys.version, np.__version__,
                 *(repr(asdict(c) if hasattr(c, "__dataclass_fields__") else c) for c in configs)):
        digest.update(part.encode())
    for package in _STATE_CODE:
        for source in sorted((_PACKAGE / package).glob("*.py")):
            digest.update(source.name.encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()


def store_id(env: Environment) -> str:
    """The store's random id, given to it at the first call."""
    found = env.get_meta(STORE_ID_KEY)
    if found is None:
        found = secrets.token_hex(16)
        env.put_meta(STORE_ID_KEY, found)
    return found


def write(data_dir: Path, header: Header, namespaces: dict) -> Path:
    """Write ``namespaces`` to the snapshot file, replacing the last one only once complete.

    It reads nothing but RAM and writes nothing but the file, so a forked child may call it."""
    path = path_in(data_dir)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # Memory texts are in it: readable by the daemon's user only, like the store.
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
        pickle.dump(asdict(header), fh, protocol=pickle.HIGHEST_PROTOCOL)
        with _no_gc():
            _Pickler(fh, protocol=pickle.HIGHEST_PROTOCOL).dump(namespaces)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def read(env: Environment, data_dir: Path, fp: str) -> Snapshot | None:
    """The snapshot if it was written for this store by this code and configuration, else None
    (the reason is logged); which of its namespaces are current is for ``Snapshot.take``."""
    path = path_in(data_dir)
    if not path.exists():
        return None
    try:
        with open(path, "rb") as fh:
            raw = pickle.load(fh)
            if not isinstance(raw, dict) or raw.get("format") != FORMAT:
                log.info("index snapshot not used: the indexes are rebuilt from the store",
                         reason="written by another version of memosd")
                return None
            header = Header(**raw)
            why = _stale(header, env, fp)
            if why is not None:
                log.info("index snapshot not used: the indexes are rebuilt from the store", reason=why)
                return None
            with _no_gc():
                return Snapshot(header, pickle.load(fh))
    except Exception as exc:  # noqa: BLE001 - any unreadable snapshot means a rebuild, never a failed start
        log.warning("index snapshot unreadable: the indexes are rebuilt from the store", error=repr(exc))
        return None


class _Pickler(pickle.Pickler):
    """Pickles numpy's built-in dtypes by name, so that they read back as numpy's own dtype objects.

    Plain pickle reads every array's dtype back as a new, equal dtype object, and numpy's fast path
    for ``np.add.at`` (how recall sums posting lists) is taken only for its own: on arrays read
    back from a plain pickle, the sums ran 15-20 times slower (50 ns a posting against 3)."""

    def reducer_override(self, obj):
        if isinstance(obj, np.dtype) and obj.isbuiltin == 1:
            return np.dtype, (obj.str,)
        return NotImplemented


@contextlib.contextmanager
def _no_gc():
    """Millions of small objects are made or walked at once: the cyclic GC would scan them over and
    over (it more than doubles the time), and none of them is garbage."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _stale(header: Header, env: Environment, fp: str) -> str | None:
    if header.format != FORMAT or header.fingerprint != fp:
        return "written by other code or configuration"
    if env.get_meta(STORE_ID_KEY) != header.store_id:
        return "written for another store"
    return None
