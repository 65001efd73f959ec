"""``memosd backup``, ``memosd restore`` and ``memosd migrate``: keeping a store safe across time.

``backup`` asks the running daemon for a hot copy (admin endpoint), or with
``--data-dir`` copies a store no daemon is running on. ``restore`` and
``migrate`` work on a stopped store directly. See docs/backup.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

import msgspec

from memosd_client import AdminClient
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import ConnectionFailedError, MemosdError

from ..store.backup import (
    BackupError,
    DestinationError,
    ExistingStoreError,
    StoreInUseError,
    VerificationError,
    backup_result,
    lock_store,
    offline_backup,
    restore,
)
from ..store.environment import StoreError
from ..store.migrations import MigrationError, MigrationReport, migrate
from .output import ExitCode, print_json

_EXIT_FOR = (
    (DestinationError, ExitCode.INVALID),
    (VerificationError, ExitCode.INVALID),
    (StoreInUseError, ExitCode.CONFLICT),
    (ExistingStoreError, ExitCode.CONFLICT),
    (BackupError, ExitCode.ERROR),
    (MigrationError, ExitCode.ERROR),
    (StoreError, ExitCode.ERROR),
)


def _refuse(err: Exception) -> int:
    print(f"memosd: {err}", file=sys.stderr)
    return next(code for cls, code in _EXIT_FOR if isinstance(err, cls))


def _counts(namespaces: dict[str, int]) -> str:
    versions = sum(namespaces.values())
    return f"{versions} versions in {len(namespaces)} namespace{'s' if len(namespaces) != 1 else ''}"


_WATCH_EVERY_S = 2.0
"""How often ``backup`` checks that the daemon it is waiting for is still the one that started it."""


def _hot_backup(args, dest: Path) -> m.BackupResult:
    """Ask the daemon for a backup; fail early if no daemon answers or it dies meanwhile.

    ZeroMQ does not report a vanished peer, so without the status checks a
    crashed daemon would leave the command waiting for the whole --timeout.
    """
    probe_timeout = min(args.timeout, 5.0)
    with AdminClient(args.admin_endpoint, timeout=probe_timeout, retries=0) as probe:
        pid = probe.status().pid
        outcome: dict[str, object] = {}

        def ask() -> None:
            try:
                with AdminClient(args.admin_endpoint, timeout=args.timeout, retries=0) as admin:
                    outcome["result"] = admin.request("backup", m.BackupArgs(dest=str(dest)))
            except BaseException as exc:  # re-raised on the main thread
                outcome["error"] = exc

        worker = threading.Thread(target=ask, name="memosd-backup-request", daemon=True)
        worker.start()
        misses = 0
        while worker.is_alive():
            worker.join(_WATCH_EVERY_S)
            if not worker.is_alive():
                break
            try:
                same = probe.status().pid == pid
                misses = 0
            except MemosdError:
                same, misses = True, misses + 1
            if not same or misses >= 2:
                raise ConnectionFailedError("the daemon stopped or restarted during the backup; the backup did "
                                            "not finish (a backup without manifest.json is incomplete)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


# --------------------------------------------------------------------------- commands


def cmd_backup(args) -> int:
    """Hot backup through the daemon, or offline with --data-dir."""
    # The daemon resolves the path on its own host and cwd: send an absolute one.
    dest = Path(os.path.abspath(args.dest))
    try:
        if args.data_dir:
            result = backup_result(dest, offline_backup(Path(args.data_dir).resolve(), dest))
        else:
            result = _hot_backup(args, dest)
    except (BackupError, StoreError) as err:
        return _refuse(err)
    if args.json:
        print_json(result)
    else:
        print(f"backup written to {result.path}: {_counts(result.manifest['namespaces'])}, "
              f"{result.bytes:,} bytes, sha256 {result.sha256}")
    return ExitCode.OK


def cmd_restore(args) -> int:
    """Verify a backup and install it as the store of a stopped data dir."""
    data_dir = Path(args.data_dir).resolve()
    try:
        report = restore(Path(args.src).resolve(), data_dir, force=args.force)
    except (BackupError, StoreError) as err:
        return _refuse(err)
    if args.json:
        print_json(report)
        return ExitCode.OK
    manifest = report.manifest
    print(f"restored {report.source} into {report.data_dir}: {_counts(manifest.namespaces)} "
          f"(schema {manifest.schema_version}, backed up {manifest.created_at})")
    if report.kept_aside:
        print(f"the previous store is kept as {report.kept_aside}")
    if report.needs_migration:
        print(f"run `memosd migrate --data-dir {data_dir}` before starting the daemon")
    return ExitCode.OK


def _print_migration(report: MigrationReport) -> None:
    if report.current:
        print(f"schema {report.found_version} is current, nothing to do")
        return
    verb = "would migrate" if report.dry_run else "migrated"
    print(f"{verb} {report.data_dir} from schema {report.found_version} to {report.target_version}:")
    for step in report.steps:
        print(f"  {step.from_version} -> {step.to_version}  {step.description}")
    if report.dry_run:
        print("dry run: nothing was changed")


def cmd_migrate(args) -> int:
    """Apply pending schema migrations to a stopped store (or list them with --dry-run)."""
    data_dir = Path(args.data_dir).resolve()
    try:
        if (data_dir / "memosd.lock").exists():
            # Probe the lock first so "daemon running" gets its own exit code.
            lock_store(data_dir).close()
        report = migrate(data_dir, dry_run=args.dry_run)
    except (BackupError, MigrationError, StoreError) as err:
        return _refuse(err)
    if args.json:
        print_json({**msgspec.to_builtins(report), "current": report.current})
    else:
        _print_migration(report)
    return ExitCode.OK


# --------------------------------------------------------------------------- parser


def add_maintenance_commands(sub, common: argparse.ArgumentParser) -> None:
    """Add ``backup``, ``restore`` and ``migrate`` to the ``memosd`` subparsers.

    ``common`` is not used as a parent: these commands talk to the admin
    endpoint or to no daemon at all, and ``backup`` needs its own timeout.
    """
    p = sub.add_parser(
        "backup", help="write a consistent copy of the store and its manifest into a new directory",
        description="Ask the running daemon for a hot, consistent, compacted copy of its store (it keeps "
                    "serving meanwhile), written with manifest.json into DEST, which must not exist or be "
                    "empty. DEST is a path on the daemon's host. With --data-dir, back up a store that no "
                    "daemon is running on instead.")
    p.add_argument("dest", metavar="DEST", help="new or empty directory for the backup")
    p.add_argument("--data-dir", help="back up this store offline (refused while a daemon runs on it)")
    p.add_argument("--admin-endpoint", default=None, help="admin endpoint of the running daemon")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the daemon (default 3600)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_backup)

    p = sub.add_parser(
        "restore", help="verify a backup and install it as the store of a data dir",
        description="Check SRC's manifest (format, schema, SHA-256 of data.mdb) and copy the store into "
                    "the data dir. Refused while a daemon runs on the data dir, and when the data dir already "
                    "holds a store unless --force is given (the old data.mdb is then kept aside as "
                    "data.mdb.before-restore-<time>).")
    p.add_argument("src", metavar="SRC", help="backup directory (as written by memosd backup)")
    p.add_argument("--data-dir", required=True, help="data dir of the (stopped) daemon to restore into")
    p.add_argument("--force", action="store_true", help="replace an existing store, keeping its file aside")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_restore)

    p = sub.add_parser(
        "migrate", help="upgrade a stopped store to this memosd's schema",
        description="Apply the pending schema migrations in order, each in one transaction that also records "
                    "the new schema version. The daemon must be stopped.")
    p.add_argument("--data-dir", required=True, help="data dir of the (stopped) daemon")
    p.add_argument("--dry-run", action="store_true", help="list the migrations that would run; change nothing")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_migrate)
