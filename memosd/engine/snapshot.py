"""The in-RAM indexes of every namespace, written at a clean stop and opened at the next start.

Rebuilding the indexes from LMDB costs tens of seconds per million memories (every text is tokenised,
parsed for time expressions and indexed again). A clean stop writes what it has in RAM to
``<data_dir>/indexes/snapshot.pickle``; the next start opens it instead, when it describes exactly the
store it finds:

- the snapshot's token equals the ``index_snapshot`` key that the stop wrote into LMDB just before it,
  and LMDB's last transaction id is still the one it had then: any write since (a daemon that was
  killed after writing, ``memosd migrate``, a restored backup) changes it;
- and the code, configuration, Python and numpy that wrote it are the ones reading it (a fingerprint).

Anything else (no snapshot, a mismatch, an unreadable file) means the indexes are rebuilt from LMDB as
before, so a snapshot can make a start faster but never change an answer. The file lives in the data
directory, which only the daemon's user can write; it is read with pickle, so it must stay that way.
What the snapshot leaves out is rebuilt on use: resident page vectors (they fault back in under the
budget), caches, and the counters since start.
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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..logs import get_logger
from ..store.environment import Environment

log = get_logger("memosd.snapshot")

FORMAT = 1
META_KEY = "index_snapshot"
"""LMDB meta key holding the token of the snapshot written at the last clean stop."""
_PACKAGE = Path(__file__).resolve().parent.parent
_STATE_CODE = ("engine", "retrieval", "temporal", "tiers")
"""Packages whose classes are in the snapshot: any change to their code makes older snapshots stale."""


@dataclass(frozen=True)
class Header:
    """What a snapshot was written from; compared before its body is read."""

    format: int
    fingerprint: str
    token: str
    txnid: int
    namespaces: int
    written_at: float


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


def write(env: Environment, data_dir: Path, namespaces: dict, fp: str) -> Path:
    """Write ``namespaces`` to the snapshot file; the writer must be stopped (no write may follow).

    The token goes into LMDB first: a stop that dies before the file is complete leaves a token
    that no file carries, and the next start rebuilds."""
    token = secrets.token_hex(16)
    env.put_meta(META_KEY, token)
    header = Header(FORMAT, fp, token, env.env.info()["last_txnid"], len(namespaces), time.time())
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


def read(env: Environment, data_dir: Path, fp: str) -> dict | None:
    """The namespaces of a snapshot that matches this store, code and configuration, else None
    (the reason is logged)."""
    path = path_in(data_dir)
    if not path.exists():
        return None
    try:
        with open(path, "rb") as fh:
            header = Header(**pickle.load(fh))
            why = _stale(header, env, fp)
            if why is not None:
                log.info("index snapshot not used: the indexes are rebuilt from the store", reason=why)
                return None
            with _no_gc():
                return pickle.load(fh)
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
    if env.get_meta(META_KEY) != header.token:
        return "the store was not stopped cleanly after it was written"
    if env.env.info()["last_txnid"] != header.txnid:
        return "the store was written to after it"
    return None
