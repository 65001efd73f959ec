"""Backup, restore and migrate as an operator uses them: real daemons, real LMDB files, the real CLI.

A backup taken while a client keeps writing restores into a store that a new
daemon serves with every memory acknowledged before the backup began; damaged
or foreign backups, occupied stores and non-empty destinations are refused
without touching anything; a daemon killed mid-backup loses no acknowledged
write; the migration framework applies numbered steps in order, one
transaction each, and stores newer than the code are refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import lmdb
import msgspec
import psutil
import pytest

from memosd.cli.output import ExitCode
from memosd.store import environment, migrations
from memosd.store.backup import offline_backup
from memosd.store.migrations import Migration, MigrationError, migrate
from memosd.testing import DaemonProcess
from memosd_client.protocol import messages as m

# --------------------------------------------------------------------------- helpers


def memosd_cli(*args: str) -> subprocess.CompletedProcess:
    """Run ``memosd ARGS`` as an operator would."""
    return subprocess.run([sys.executable, "-m", "memosd", *args], capture_output=True, text=True, timeout=120)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored_versions(daemon: DaemonProcess, namespace: str) -> dict[int, str]:
    """Every stored version of a namespace (current, superseded, forgotten): id -> text."""
    with daemon.client(namespace) as client:
        return {mem.id: mem.text for mem in client.export()}


def _meta_db(env: lmdb.Environment):
    return env.open_db(b"meta", create=False)


def read_meta(data_dir: Path, key: str):
    env = lmdb.open(str(data_dir), readonly=True, lock=False, max_dbs=16)
    try:
        db = _meta_db(env)
        with env.begin() as txn:
            raw = txn.get(key.encode(), db=db)
    finally:
        env.close()
    return None if raw is None else msgspec.msgpack.decode(raw)


def write_meta(data_dir: Path, key: str, value) -> None:
    """Change a meta record of a stopped store directly, as a newer memosd would have written it."""
    env = lmdb.open(str(data_dir), max_dbs=16)
    try:
        db = _meta_db(env)
        with env.begin(write=True) as txn:
            txn.put(key.encode(), msgspec.msgpack.encode(value), db=db)
    finally:
        env.close()


def backup_children(dest: Path) -> list[psutil.Process]:
    """Backup copy processes still working on ``dest``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "memosd.store.backup" in cmdline and str(dest) in cmdline:
            found.append(proc)
    return found


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def stopped_store(tmp_path_factory) -> tuple[Path, dict[str, dict[int, str]]]:
    """A store written by a real daemon (with an update and a forget), then stopped; and what it holds."""
    path = tmp_path_factory.mktemp("origin") / "store"
    daemon = DaemonProcess(path)
    try:
        daemon.start()
        with daemon.client("alpha") as client:
            client.remember_many([f"alpha memory {i} about the garden" for i in range(30)])
        with daemon.client("beta") as client:
            ids = client.remember_many([f"beta memory {i} about the boat" for i in range(10)]).ids
            client.update(ids[0], "beta memory 0, corrected")
            client.forget(ids[1])
        expected = {ns: stored_versions(daemon, ns) for ns in ("alpha", "beta")}
        assert daemon.stop() == 0
    finally:
        daemon.cleanup()
    return path, expected


@pytest.fixture
def store_copy(stopped_store, tmp_path) -> Path:
    """A private copy of the stopped store for a test to change."""
    target = tmp_path / "store"
    shutil.copytree(stopped_store[0], target)
    return target


@pytest.fixture(scope="module")
def backup_of_store(stopped_store, tmp_path_factory) -> Path:
    """An offline backup of the stopped store (tests that damage it work on a copy)."""
    dest = tmp_path_factory.mktemp("backups") / "b1"
    offline_backup(stopped_store[0], dest)
    return dest


# --------------------------------------------------------------------------- hot backup and restore


def test_hot_backup_while_writing_restores_every_acknowledged_memory(daemon, ns, tmp_path):
    acked: list[tuple[int, str, float, float]] = []  # id, text, sent at, acknowledged at
    stop = threading.Event()
    failures: list[BaseException] = []

    def keep_writing() -> None:
        try:
            with daemon.client(ns) as client:
                i = 0
                while not stop.is_set():
                    text = f"written during the backup test, number {i}"
                    sent = time.monotonic()
                    memory_id = client.remember(text)
                    acked.append((memory_id, text, sent, time.monotonic()))
                    i += 1
        except BaseException as exc:  # surfaced by the assertions below
            failures.append(exc)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        deadline = time.monotonic() + 30
        while len(acked) < 20 and time.monotonic() < deadline and not failures:
            time.sleep(0.01)
        before = list(acked)
        dest = tmp_path / "backup"
        backup_sent = time.monotonic()
        with daemon.admin(timeout=120, retries=0) as admin:
            result = admin.request("backup", m.BackupArgs(dest=str(dest)))
        backup_replied = time.monotonic()
    finally:
        stop.set()
        writer.join()
    assert not failures, failures
    assert len(before) >= 20

    # The daemon kept acknowledging writes sent after the backup request, before its reply.
    during = [a for a in acked if a[2] > backup_sent and a[3] < backup_replied]
    assert during, "no write was acknowledged while the backup ran"

    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest == result.manifest
    assert manifest["format"] == "memosd-backup" and manifest["format_version"] == 1
    assert manifest["schema_version"] == environment.SCHEMA_VERSION
    assert set(manifest["encoder"]) == {"name", "version", "dim"}
    assert manifest["files"]["data.mdb"]["sha256"] == sha256(dest / "data.mdb") == result.sha256
    assert manifest["files"]["data.mdb"]["bytes"] == (dest / "data.mdb").stat().st_size == result.bytes
    assert manifest["namespaces"][ns] >= len(before)
    assert sorted(p.name for p in dest.iterdir()) == ["data.mdb", "manifest.json"]

    restored = tmp_path / "restored"
    done = memosd_cli("restore", str(dest), "--data-dir", str(restored))
    assert done.returncode == ExitCode.OK, done.stderr
    assert "restored" in done.stdout

    with DaemonProcess(restored) as fresh:
        versions = stored_versions(fresh, ns)
        for memory_id, text, _, _ in before:
            assert versions.get(memory_id) == text, f"acknowledged memory {memory_id} missing after restore"
        # Exactly what the backup holds: the same namespaces with the same counts.
        with fresh.client() as client:
            stats = client.stats(all_namespaces=True)
        assert {s.name: s.memories for s in stats.namespaces} == manifest["namespaces"]


def test_offline_backup_and_restore_serve_the_same_memories(stopped_store, tmp_path):
    path, expected = stopped_store
    dest = tmp_path / "nightly"
    done = memosd_cli("backup", str(dest), "--data-dir", str(path), "--json")
    assert done.returncode == ExitCode.OK, done.stderr
    reply = json.loads(done.stdout)
    assert reply["manifest"]["namespaces"] == {ns: len(v) for ns, v in expected.items()}
    assert reply["sha256"] == sha256(dest / "data.mdb")

    restored = tmp_path / "restored"
    assert memosd_cli("restore", str(dest), "--data-dir", str(restored)).returncode == ExitCode.OK
    with DaemonProcess(restored) as fresh:
        for ns, versions in expected.items():
            assert stored_versions(fresh, ns) == versions


# --------------------------------------------------------------------------- refusals


def _flip_a_byte(backup: Path) -> None:
    data = bytearray((backup / "data.mdb").read_bytes())
    data[len(data) // 2] ^= 0x01
    (backup / "data.mdb").write_bytes(bytes(data))


def _edit_manifest(backup: Path, **changes) -> None:
    manifest = json.loads((backup / "manifest.json").read_text())
    manifest.update(changes)
    (backup / "manifest.json").write_text(json.dumps(manifest))


DAMAGES = {
    "flipped byte": (_flip_a_byte, "SHA-256"),
    "newer schema": (lambda b: _edit_manifest(b, schema_version=environment.SCHEMA_VERSION + 1),
                     "newer than this memosd understands"),
    "unfinished": (lambda b: (b / "manifest.json").unlink(), "did not finish"),
    "not a memosd backup": (lambda b: _edit_manifest(b, format="tarball"), "not a memosd backup"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_restore_refuses_a_damaged_or_foreign_backup(backup_of_store, tmp_path, damage):
    spoil, message = DAMAGES[damage]
    backup = tmp_path / "backup"
    shutil.copytree(backup_of_store, backup)
    spoil(backup)
    target = tmp_path / "target"
    done = memosd_cli("restore", str(backup), "--data-dir", str(target))
    assert done.returncode == ExitCode.INVALID, done.stderr
    assert message in done.stderr
    assert not (target / "data.mdb").exists()


def test_restore_over_an_existing_store_needs_force_and_keeps_the_old_file(backup_of_store, store_copy):
    old = sha256(store_copy / "data.mdb")
    refused = memosd_cli("restore", str(backup_of_store), "--data-dir", str(store_copy))
    assert refused.returncode == ExitCode.CONFLICT
    assert "--force" in refused.stderr
    assert sha256(store_copy / "data.mdb") == old
    assert not list(store_copy.glob("data.mdb.before-restore-*"))

    forced = memosd_cli("restore", str(backup_of_store), "--data-dir", str(store_copy), "--force", "--json")
    assert forced.returncode == ExitCode.OK, forced.stderr
    report = json.loads(forced.stdout)
    kept = Path(report["kept_aside"])
    assert kept.parent == store_copy and kept.name.startswith("data.mdb.before-restore-")
    assert sha256(kept) == old
    assert sha256(store_copy / "data.mdb") == report["manifest"]["files"]["data.mdb"]["sha256"]


def test_running_daemon_refuses_offline_work_and_backups_into_used_directories(daemon, ns, tmp_path):
    with daemon.client(ns) as client:
        client.remember("present before the refused backups")
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("keep me")
    done = memosd_cli("backup", str(used), "--admin-endpoint", daemon.admin_endpoint)
    assert done.returncode == ExitCode.INVALID
    assert "not empty" in done.stderr
    assert [p.name for p in used.iterdir()] == ["notes.txt"] and (used / "notes.txt").read_text() == "keep me"

    fresh = tmp_path / "fresh"
    done = memosd_cli("backup", str(fresh), "--data-dir", str(daemon.data_dir))
    assert done.returncode == ExitCode.CONFLICT
    assert "in use by a running memosd" in done.stderr
    assert not fresh.exists()

    before = sha256(daemon.data_dir / "data.mdb")
    for args in (["restore", str(_any_backup(tmp_path)), "--data-dir", str(daemon.data_dir), "--force"],
                 ["migrate", "--data-dir", str(daemon.data_dir)]):
        done = memosd_cli(*args)
        assert done.returncode == ExitCode.CONFLICT, done.stderr
        assert "in use by a running memosd" in done.stderr
    assert sha256(daemon.data_dir / "data.mdb") == before
    with daemon.client(ns) as client:
        assert [mem.text for mem in client.export()] == ["present before the refused backups"]


def test_backup_without_a_daemon_fails_at_once(tmp_path):
    done = memosd_cli("backup", str(tmp_path / "b"), "--admin-endpoint", f"ipc://{tmp_path}/nobody.sock",
                      "--timeout", "0.5")
    assert done.returncode == ExitCode.UNREACHABLE
    assert "nobody.sock" in done.stderr  # the message names the endpoint it could not reach
    assert not (tmp_path / "b").exists()


def _any_backup(tmp_path: Path) -> Path:
    """A valid backup of a small store of its own."""
    src = tmp_path / "small-store"
    env = environment.Environment(environment.StoreConfig(path=src))
    env.close()
    dest = tmp_path / "small-backup"
    offline_backup(src, dest)
    return dest


# --------------------------------------------------------------------------- crash during a backup


def test_kill_during_backup_leaves_the_live_store_whole(tmp_path):
    daemon = DaemonProcess(tmp_path / "store")
    dest = tmp_path / "backup"
    try:
        daemon.start()
        acked: dict[int, str] = {}
        with daemon.client("crash") as client:
            for batch in range(5):
                texts = [f"crash test memory {batch}-{i} " + "padding " * 40 for i in range(100)]
                acked.update(zip(client.remember_many(texts).ids, texts))

        cli = subprocess.Popen([sys.executable, "-m", "memosd", "backup", str(dest), "--admin-endpoint",
                                daemon.admin_endpoint, "--timeout", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not backup_children(dest) and cli.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        daemon.kill()  # SIGKILL while the backup is under way (or, at worst, just after it)

        # The copy process notices that its daemon is gone and stops.
        deadline = time.monotonic() + 10
        while backup_children(dest) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not backup_children(dest)

        daemon.start()
        assert stored_versions(daemon, "crash") == acked
        daemon.stop()
        _, err = cli.communicate(timeout=30)
    finally:
        daemon.cleanup()

    # What the operator sees: the command failed and left nothing that passes for a backup,
    # or the copy finished just before the kill and restores.
    restore = memosd_cli("restore", str(dest), "--data-dir", str(tmp_path / "restored"))
    if (dest / "manifest.json").exists():
        assert restore.returncode == ExitCode.OK, restore.stderr
    else:
        assert cli.returncode == ExitCode.UNREACHABLE, err
        assert restore.returncode == ExitCode.INVALID and "did not finish" in restore.stderr


# --------------------------------------------------------------------------- migrations


def test_migrate_on_a_current_store_changes_nothing(store_copy):
    before = sha256(store_copy / "data.mdb")
    done = memosd_cli("migrate", "--data-dir", str(store_copy))
    assert done.returncode == ExitCode.OK, done.stderr
    assert done.stdout.strip() == f"schema {environment.SCHEMA_VERSION} is current, nothing to do"
    dry = memosd_cli("migrate", "--data-dir", str(store_copy), "--dry-run", "--json")
    assert dry.returncode == ExitCode.OK
    report = json.loads(dry.stdout)
    assert report["current"] is True and report["steps"] == []
    assert sha256(store_copy / "data.mdb") == before


def test_migrate_refuses_a_directory_without_a_store(tmp_path):
    with pytest.raises(MigrationError, match="no memosd store"):
        migrate(tmp_path / "empty")
    assert not (tmp_path / "empty" / "data.mdb").exists()


def test_shipped_registry_is_empty_because_schema_1_is_the_first_schema():
    assert environment.SCHEMA_VERSION == 1
    assert migrations.MIGRATIONS == {}


def _tag_every_memory(env, txn) -> None:
    """A realistic step: rewrite every stored memory record."""
    cursor = txn.cursor(db=env.dbs["memories"])
    for key, raw in list(cursor):
        record = msgspec.msgpack.decode(raw)
        record["tags"] = [*record.get("tags", []), "migrated"]
        txn.put(key, msgspec.msgpack.encode(record), db=env.dbs["memories"])


def _note(step: int):
    def apply(env, txn) -> None:
        raw = txn.get(b"test_steps", db=env.dbs["meta"])
        done = [] if raw is None else msgspec.msgpack.decode(raw)
        txn.put(b"test_steps", msgspec.msgpack.encode([*done, step]), db=env.dbs["meta"])
    return apply


def _all_tags(data_dir: Path) -> list[list[str]]:
    env = lmdb.open(str(data_dir), readonly=True, lock=False, max_dbs=16)
    try:
        db = env.open_db(b"memories", create=False)
        with env.begin() as txn:
            return [msgspec.msgpack.decode(raw).get("tags", []) for _, raw in txn.cursor(db=db)]
    finally:
        env.close()


def test_migration_framework_runs_steps_in_order_one_transaction_each(store_copy, monkeypatch):
    # A pretend future memosd at schema 3 with two registered steps (in-process only).
    monkeypatch.setattr(environment, "SCHEMA_VERSION", 3)
    def first(env, txn) -> None:
        _tag_every_memory(env, txn)
        _note(1)(env, txn)

    # Registered out of order on purpose: steps run by version, not by registration.
    monkeypatch.setattr(migrations, "MIGRATIONS", {2: Migration("second step", _note(2)),
                                                   1: Migration("first step: tag every memory", first)})
    before = sha256(store_copy / "data.mdb")

    plan = migrate(store_copy, dry_run=True)
    assert [(s.from_version, s.to_version) for s in plan.steps] == [(1, 2), (2, 3)]
    assert plan.version == 1 and plan.dry_run
    assert sha256(store_copy / "data.mdb") == before, "a dry run changed the store"

    done = migrate(store_copy)
    assert (done.found_version, done.version) == (1, 3)
    assert read_meta(store_copy, "schema_version") == 3
    assert read_meta(store_copy, "test_steps") == [1, 2]
    tags = _all_tags(store_copy)
    assert tags and all(t[-1] == "migrated" for t in tags)

    # Already at the target: nothing runs again.
    assert migrate(store_copy).steps == []
    assert read_meta(store_copy, "test_steps") == [1, 2]

    # This memosd (schema 1) refuses the newer store, and leaves it untouched and unlocked.
    monkeypatch.setattr(environment, "SCHEMA_VERSION", 1)
    migrated = sha256(store_copy / "data.mdb")
    with pytest.raises(environment.StoreError, match="newer than this memosd understands"):
        migrate(store_copy)
    assert sha256(store_copy / "data.mdb") == migrated
    migrate_again = memosd_cli("migrate", "--data-dir", str(store_copy))
    assert migrate_again.returncode == ExitCode.ERROR
    assert "newer than this memosd understands" in migrate_again.stderr


def test_a_failing_step_leaves_the_store_at_the_last_complete_version(store_copy, monkeypatch):
    def half_done_then_fail(env, txn) -> None:
        txn.put(b"half_done", msgspec.msgpack.encode(True), db=env.dbs["meta"])
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(environment, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(migrations, "MIGRATIONS", {1: Migration("works", _note(1)),
                                                   2: Migration("fails", half_done_then_fail)})
    with pytest.raises(MigrationError, match="the store is at schema 2"):
        migrate(store_copy)
    assert read_meta(store_copy, "schema_version") == 2
    assert read_meta(store_copy, "test_steps") == [1]
    assert read_meta(store_copy, "half_done") is None


def test_a_gap_in_the_registry_is_refused_before_anything_runs(store_copy, monkeypatch):
    monkeypatch.setattr(environment, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(migrations, "MIGRATIONS", {1: Migration("only the first", _note(1))})
    before = sha256(store_copy / "data.mdb")
    with pytest.raises(MigrationError, match="no migration from schema 2 to 3"):
        migrate(store_copy)
    assert sha256(store_copy / "data.mdb") == before


# --------------------------------------------------------------------------- newer store at start


def test_daemon_refuses_to_start_on_a_store_with_a_newer_schema(store_copy):
    write_meta(store_copy, "schema_version", environment.SCHEMA_VERSION + 1)
    before = sha256(store_copy / "data.mdb")
    daemon = DaemonProcess(store_copy)
    try:
        with pytest.raises(RuntimeError, match="exited with") as refused:
            daemon.start()
        assert "newer than this memosd understands" in str(refused.value)
        assert "upgrade memosd" in str(refused.value)
    finally:
        daemon.cleanup()
    assert sha256(store_copy / "data.mdb") == before
    assert read_meta(store_copy, "schema_version") == environment.SCHEMA_VERSION + 1
