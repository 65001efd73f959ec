"""Backups of a memosd store, and restoring them.

A backup is a directory holding ``data.mdb`` (a compacted copy of the store
taken inside one LMDB read transaction, so it is consistent even while writers
go on) and ``manifest.json`` (what the copy holds and its checksum). The
manifest is written last: a backup directory without one never finished and is
refused by restore.

A running daemon's backup is copied by a child process (``python -m
memosd.store.backup``), not by a thread of the daemon: LMDB must not change a
process's map size while that process has a read transaction open, and a
long copy must neither stall the writer's map growth nor the daemon's readers.
The child is an ordinary extra LMDB reader of the store and gives up if the
daemon dies.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import lmdb
import msgspec

from memosd_client.protocol import messages as m

from . import environment, keys
from .environment import SUBDATABASES, Environment, StoreError

FORMAT = "memosd-backup"
FORMAT_VERSION = 1
"""Version of the backup layout (this module's manifest and file set)."""

MANIFEST = "manifest.json"
DATA_FILE = "data.mdb"
_CHUNK = 1 << 20
_DESCRIBED = (b"meta", b"namespaces", b"memories")
"""The sub-databases a manifest is built from (the copy holds every sub-database)."""


class BackupError(Exception):
    """A backup or restore was refused or failed (with a message meant for an operator)."""


class DestinationError(BackupError):
    """The backup destination cannot be used (not empty, not a directory, not absolute)."""


class StoreInUseError(BackupError):
    """A running memosd holds the store, so it cannot be read or replaced offline."""


class VerificationError(BackupError):
    """The backup does not match its manifest, or this memosd cannot read it."""


class ExistingStoreError(BackupError):
    """Restore would replace a store and ``force`` was not given."""


# --------------------------------------------------------------------------- manifest


class FileEntry(msgspec.Struct, forbid_unknown_fields=True):
    bytes: int
    sha256: str


class EncoderEntry(msgspec.Struct):
    name: str
    version: str
    dim: int


class Manifest(msgspec.Struct, forbid_unknown_fields=True):
    """Contents of ``manifest.json``."""

    format: str
    format_version: int
    memosd_version: str
    schema_version: int
    encoder: EncoderEntry | None
    created_at: str
    """UTC, ISO 8601."""
    namespaces: dict[str, int]
    """Namespace name -> stored versions (current, superseded and forgotten)."""
    files: dict[str, FileEntry]


class _FormatProbe(msgspec.Struct):
    """The two fields every manifest version keeps, read before the rest is trusted."""

    format: str = ""
    format_version: int = 0


@dataclass(frozen=True, slots=True)
class StoreContents:
    """What a store snapshot holds, as recorded in (and checked against) a manifest."""

    schema_version: int | None
    encoder: EncoderEntry | None
    namespaces: dict[str, int]


def describe(txn: lmdb.Transaction, dbs: dict[str, object]) -> StoreContents:
    """Schema, encoder and per-namespace version counts seen by one read transaction."""
    from ..engine.registry import Allocator  # the namespace record layout lives with the allocator

    raw_schema = txn.get(b"schema_version", db=dbs["meta"])
    raw_encoder = txn.get(b"encoder", db=dbs["meta"])
    encoder = None if raw_encoder is None else msgspec.convert(msgspec.msgpack.decode(raw_encoder), EncoderEntry)
    namespaces = {}
    for name, ns_id in Allocator.all_namespaces(txn, dbs["namespaces"]):
        prefix = keys.ns_prefix(ns_id)
        count = 0
        cursor = txn.cursor(db=dbs["memories"])
        if cursor.set_range(prefix):
            for key in cursor.iternext(keys=True, values=False):
                if not key.startswith(prefix):
                    break
                count += 1
        namespaces[name] = count
    return StoreContents(
        schema_version=None if raw_schema is None else msgspec.msgpack.decode(raw_schema),
        encoder=encoder,
        namespaces=namespaces,
    )


def _open_readonly(path: Path, *, shared: bool, subdir: bool = True) -> tuple[lmdb.Environment, dict]:
    # shared=True registers as a reader in lock.mdb so a running daemon's writer keeps our snapshot's pages.
    try:
        env = lmdb.open(str(path), readonly=True, lock=shared, subdir=subdir, max_dbs=len(SUBDATABASES) + 4,
                        readahead=False)
    except lmdb.Error as exc:
        raise BackupError(f"cannot open the store at {path}: {exc}") from None
    try:
        dbs = {name.decode(): env.open_db(name, create=False) for name in _DESCRIBED}
    except lmdb.Error as exc:
        env.close()
        raise BackupError(f"{path} is not a memosd store: {exc}") from None
    return env, dbs


def _begin_snapshot(env: lmdb.Environment) -> lmdb.Transaction:
    for _ in range(5):
        try:
            return env.begin()
        except lmdb.MapResizedError:  # the daemon grew the map since we opened: adopt its size
            env.set_mapsize(0)
    return env.begin()


# --------------------------------------------------------------------------- files


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's contents."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_destination(dest: Path) -> None:
    """Raise :class:`DestinationError` unless ``dest`` is absent or an empty directory."""
    if "\0" in str(dest):
        raise DestinationError("backup destination contains a NUL byte")
    if not dest.is_absolute():
        raise DestinationError(f"backup destination {str(dest)!r} must be an absolute path")
    if dest.is_dir():
        if any(dest.iterdir()):
            raise DestinationError(f"backup destination {dest} is not empty; choose a new directory")
    elif dest.exists():
        raise DestinationError(f"backup destination {dest} exists and is not a directory")


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- backup


def snapshot(source: Path, dest: Path, *, shared: bool) -> Manifest:
    """Copy the store in ``source`` into the new backup directory ``dest``.

    ``shared`` is True when a daemon has the store open (we are one more LMDB
    reader) and False for an offline store whose memosd lock the caller holds.
    Files appear in ``dest`` only once complete: the copy goes to a private
    staging directory, is hashed and synced, then linked in, manifest last.
    """
    from .. import __version__

    check_destination(dest)
    created_dest = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incomplete-", dir=dest))
    linked: list[Path] = []
    done = False
    try:
        env, dbs = _open_readonly(source, shared=shared)
        try:
            txn = _begin_snapshot(env)
            try:
                contents = describe(txn, dbs)
                # Same transaction for the copy and the description: the manifest says what the copy holds.
                env.copy(str(staging), compact=True, txn=txn)
            finally:
                txn.abort()
        finally:
            env.close()
        copied = staging / DATA_FILE
        _fsync_file(copied)
        manifest = Manifest(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            memosd_version=__version__,
            schema_version=contents.schema_version or 0,
            encoder=contents.encoder,
            created_at=_utc_now(),
            namespaces=contents.namespaces,
            files={DATA_FILE: FileEntry(bytes=copied.stat().st_size, sha256=sha256_of(copied))},
        )
        manifest_tmp = staging / MANIFEST
        manifest_tmp.write_bytes(msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n")
        _fsync_file(manifest_tmp)
        # os.link never replaces an existing name, so a concurrent backup into dest cannot be clobbered.
        for name in (DATA_FILE, MANIFEST):
            os.link(staging / name, dest / name)
            linked.append(dest / name)
        _fsync_dir(dest)
        done = True
        return manifest
    except FileExistsError as exc:
        raise DestinationError(f"backup destination {dest} was written to by someone else: {exc}") from None
    except (lmdb.Error, OSError) as exc:
        raise BackupError(f"backup into {dest} failed: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done:  # leave nothing behind that could pass for a backup
            for path in reversed(linked):
                path.unlink(missing_ok=True)
            if created_dest:
                try:
                    dest.rmdir()
                except OSError:
                    pass


def lock_store(data_dir: Path):
    """Take memosd's store lock for offline work; raises :class:`StoreInUseError` if a daemon holds it."""
    try:
        return Environment._take_lock(data_dir / "memosd.lock")
    except StoreError:
        raise StoreInUseError(f"store {data_dir} is in use by a running memosd (stop it first)") from None


def _require_store(data_dir: Path) -> None:
    data_file = data_dir / DATA_FILE
    if not data_file.is_file() or data_file.stat().st_size == 0:
        raise BackupError(f"there is no memosd store in {data_dir} (no {DATA_FILE})")


def offline_backup(data_dir: Path, dest: Path) -> Manifest:
    """Back up a store no daemon is running on (refused if one is)."""
    _require_store(data_dir)
    check_destination(dest)
    try:
        lock = lock_store(data_dir)
    except StoreInUseError:
        raise StoreInUseError(f"store {data_dir} is in use by a running memosd; back it up through the daemon: "
                              "`memosd backup DEST` without --data-dir") from None
    try:
        return snapshot(data_dir, dest, shared=False)
    finally:
        lock.close()


_EXIT_DESTINATION = 3
_EXIT_FAILED = 4
_EXIT_ORPHANED = 5


def hot_backup(data_dir: Path, dest: Path) -> Manifest:
    """Back up the store of the running daemon (this process) from a child process; blocks until done."""
    check_destination(dest)
    proc = subprocess.run(
        [sys.executable, "-m", "memosd.store.backup", "--parent", str(os.getpid()), str(data_dir), str(dest)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        close_fds=True,  # never hand the store lock to the child: a daemon restarted after a crash needs it
    )
    message = proc.stderr.decode(errors="replace").strip().splitlines()
    reason = message[-1] if message else f"backup process exited with {proc.returncode}"
    if proc.returncode == _EXIT_DESTINATION:
        raise DestinationError(reason)
    if proc.returncode != 0:
        raise BackupError(reason)
    return msgspec.json.decode(proc.stdout, type=Manifest)


def backup_result(dest: Path, manifest: Manifest) -> m.BackupResult:
    """The protocol reply (and the CLI's JSON) for a finished backup."""
    data = manifest.files[DATA_FILE]
    return m.BackupResult(path=str(dest), bytes=data.bytes, sha256=data.sha256,
                          manifest=msgspec.to_builtins(manifest))


# --------------------------------------------------------------------------- restore


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What a restore did."""

    data_dir: str
    source: str
    manifest: Manifest
    kept_aside: str | None
    """Where the replaced ``data.mdb`` now is (None when the data dir held no store)."""
    needs_migration: bool
    """The backup's schema is older than this memosd's: run ``memosd migrate`` before serving."""


def read_manifest(source: Path) -> Manifest:
    """Load and check ``source/manifest.json`` (format, version, schema); not the data checksum."""
    path = source / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise VerificationError(f"{source} has no {MANIFEST}: not a memosd backup, or one that did not "
                                "finish") from None
    except OSError as exc:
        raise VerificationError(f"cannot read {path}: {exc}") from None
    try:
        probe = msgspec.json.decode(raw, type=_FormatProbe)
    except msgspec.DecodeError as exc:
        raise VerificationError(f"{path} is not a valid manifest: {exc}") from None
    if probe.format != FORMAT:
        raise VerificationError(f"{path} is not a memosd backup manifest (format {probe.format!r})")
    if probe.format_version != FORMAT_VERSION:
        raise VerificationError(f"{source} is backup format {probe.format_version}; this memosd reads format "
                                f"{FORMAT_VERSION}" + ("; upgrade memosd" if probe.format_version > FORMAT_VERSION
                                                       else ""))
    try:
        manifest = msgspec.json.decode(raw, type=Manifest)
    except msgspec.DecodeError as exc:
        raise VerificationError(f"{path} is not a valid manifest: {exc}") from None
    if manifest.schema_version > environment.SCHEMA_VERSION:
        raise VerificationError(
            f"{source} holds store schema {manifest.schema_version}, newer than this memosd understands "
            f"({environment.SCHEMA_VERSION}); restore it with a newer memosd")
    if DATA_FILE not in manifest.files:
        raise VerificationError(f"{path} lists no {DATA_FILE}")
    return manifest


def verify_backup(source: Path) -> Manifest:
    """Check the manifest and that ``data.mdb`` matches its recorded size and SHA-256."""
    manifest = read_manifest(source)
    expected = manifest.files[DATA_FILE]
    data = source / DATA_FILE
    if not data.is_file():
        raise VerificationError(f"{source} has no {DATA_FILE}")
    size = data.stat().st_size
    if size != expected.bytes:
        raise VerificationError(f"{data} is {size} bytes; the manifest says {expected.bytes}")
    if sha256_of(data) != expected.sha256:
        raise VerificationError(f"{data} does not match the manifest's SHA-256: the backup is damaged")
    return manifest


def _copy_hashing(src: Path, dst: Path) -> str:
    digest = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(_CHUNK):
            digest.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return digest.hexdigest()


def _check_restored(copy: Path, manifest: Manifest) -> None:
    # Read the copy back as LMDB: a manifest edited to fit another file is caught here.
    try:
        env, dbs = _open_readonly(copy, shared=False, subdir=False)
        try:
            with env.begin() as txn:
                contents = describe(txn, dbs)
        finally:
            env.close()
    except (BackupError, lmdb.Error, msgspec.ValidationError) as exc:
        raise VerificationError(f"the backup's {DATA_FILE} is not a readable memosd store: {exc}") from None
    if contents.schema_version != manifest.schema_version:
        raise VerificationError(f"the backup's store has schema {contents.schema_version}; the manifest says "
                                f"{manifest.schema_version}")
    if contents.namespaces != manifest.namespaces:
        raise VerificationError("the backup's store does not hold the namespaces and counts its manifest lists")


def _aside_name(data_dir: Path) -> Path:
    base = f"{DATA_FILE}.before-restore-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    candidate, n = data_dir / base, 1
    while candidate.exists():  # two restores within a second: never reuse a kept file's name
        candidate, n = data_dir / f"{base}.{n}", n + 1
    return candidate


def restore(source: Path, data_dir: Path, *, force: bool = False) -> RestoreReport:
    """Verify the backup in ``source`` and install it as the store in ``data_dir``.

    Refused when the backup does not verify, when a daemon holds ``data_dir``,
    or when ``data_dir`` already holds a store and ``force`` is False. With
    ``force`` the old ``data.mdb`` is kept as ``data.mdb.before-restore-<time>``,
    never deleted.
    """
    manifest = verify_backup(source)  # before anything in data_dir is touched
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        kept_aside = _install(source, data_dir, manifest, force)
    except OSError as exc:
        raise BackupError(f"restore into {data_dir} failed: {exc}") from None
    return RestoreReport(
        data_dir=str(data_dir),
        source=str(source),
        manifest=manifest,
        kept_aside=kept_aside,
        needs_migration=manifest.schema_version < environment.SCHEMA_VERSION,
    )


def _install(source: Path, data_dir: Path, manifest: Manifest, force: bool) -> str | None:
    """Copy the verified backup into ``data_dir`` under its lock; returns where the old file was kept."""
    lock = lock_store(data_dir)
    try:
        target = data_dir / DATA_FILE
        if target.exists() and not force:
            raise ExistingStoreError(f"{data_dir} already holds a store; pass --force to replace it (the current "
                                     f"{DATA_FILE} is kept as {DATA_FILE}.before-restore-<time>)")
        incoming = data_dir / f".{DATA_FILE}.restoring-{os.getpid()}"
        incoming.unlink(missing_ok=True)
        kept_aside = None
        try:
            # Hash what was actually written: the source could change or be misread between verify and copy.
            if _copy_hashing(source / DATA_FILE, incoming) != manifest.files[DATA_FILE].sha256:
                raise VerificationError(f"{source / DATA_FILE} changed while it was being restored")
            _check_restored(incoming, manifest)
            if target.exists():
                aside = _aside_name(data_dir)
                # A second name for the old file, then an atomic replace: data.mdb never goes missing,
                # so a crash here cannot leave a data dir where a daemon would start an empty store.
                os.link(target, aside)
                kept_aside = str(aside)
            os.replace(incoming, target)
            # lock.mdb describes the replaced file (its last transaction id); LMDB rebuilds it on open,
            # and removing it also detaches any lingering reader of the old file.
            (data_dir / "lock.mdb").unlink(missing_ok=True)
            # So does the index snapshot of the last clean stop (engine/snapshot.py): the next start
            # would not use it anyway (it checks the transaction id), but it is the old store's text.
            shutil.rmtree(data_dir / "indexes", ignore_errors=True)
            _fsync_dir(data_dir)
        finally:
            incoming.unlink(missing_ok=True)
    finally:
        lock.close()
    return kept_aside


# --------------------------------------------------------------------------- child process


def _child_main(argv: list[str] | None = None) -> int:
    """Entry point of the copy process started by :func:`hot_backup` (not an operator command)."""
    parser = argparse.ArgumentParser(prog="python -m memosd.store.backup")
    parser.add_argument("--parent", type=int, required=True, help="pid of the daemon; the copy stops if it dies")
    parser.add_argument("source")
    parser.add_argument("dest")
    args = parser.parse_args(argv)
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["manifest"] = snapshot(Path(args.source), Path(args.dest), shared=True)
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    def abandon_if_orphaned() -> None:
        if os.getppid() != args.parent:
            # Nobody is waiting for this backup any more: stop now; without a manifest it counts as unfinished.
            os._exit(_EXIT_ORPHANED)

    abandon_if_orphaned()
    worker = threading.Thread(target=work, name="memosd-backup-copy", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.05)
        abandon_if_orphaned()
    error = outcome.get("error")
    if isinstance(error, DestinationError):
        print(error, file=sys.stderr)
        return _EXIT_DESTINATION
    if isinstance(error, BackupError):
        print(error, file=sys.stderr)
        return _EXIT_FAILED
    if error is not None:
        print(f"backup failed: {error!r}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(msgspec.json.encode(outcome["manifest"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main())
