"""Numbered schema migrations of the on-disk store, run by ``memosd migrate``.

:data:`MIGRATIONS` maps a schema version to the :class:`Migration` that takes a
store from that version to the next. Migrations run in order, each inside one
write transaction that also records the new ``schema_version``: a crash (or a
failing migration) leaves the store at the last version that fully applied,
never between two.

Schema 1 is the first schema memosd shipped, so there is nothing to migrate
yet and the registry is empty. A change to the layout adds an entry here and
bumps :data:`memosd.store.environment.SCHEMA_VERSION`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lmdb
import msgspec

from . import environment, marks
from .environment import Environment, StoreConfig, StoreError


class MigrationError(Exception):
    """The store cannot be migrated (with a message meant for an operator)."""


@dataclass(frozen=True, slots=True)
class Migration:
    """Upgrades a store by one schema version.

    ``apply(env, txn)`` makes the changes inside ``txn`` (a write transaction on
    ``env.env``; the sub-databases are in ``env.dbs``). It must not commit or
    abort it; raising aborts the step and leaves the store at its old version.
    """

    description: str
    apply: Callable[[Environment, lmdb.Transaction], None]


MIGRATIONS: dict[int, Migration] = {}
"""from_version -> the migration to from_version + 1 (empty: schema 1 is the first shipped schema)."""


@dataclass(frozen=True, slots=True)
class Step:
    """One migration in a plan."""

    from_version: int
    to_version: int
    description: str


@dataclass(slots=True)
class MigrationReport:
    """What ``memosd migrate`` found and did."""

    data_dir: str
    found_version: int
    """Schema of the store before this run."""
    target_version: int
    """Schema this memosd writes."""
    version: int
    """Schema of the store after this run (unchanged on a dry run)."""
    dry_run: bool
    steps: list[Step] = field(default_factory=list)
    """Migrations applied (or, on a dry run, that would be applied), in order."""

    @property
    def current(self) -> bool:
        return self.found_version == self.target_version


def plan(found: int, target: int | None = None) -> list[Step]:
    """The steps from schema ``found`` to ``target`` (default: this memosd's schema)."""
    target = environment.SCHEMA_VERSION if target is None else target
    if found > target:
        raise MigrationError(f"the store has schema version {found}, newer than this memosd understands "
                             f"({target}); upgrade memosd")
    steps = []
    for version in range(found, target):
        migration = MIGRATIONS.get(version)
        if migration is None:
            raise MigrationError(f"this memosd has no migration from schema {version} to {version + 1}; "
                                 "migrate with the memosd release that introduced it first")
        steps.append(Step(version, version + 1, migration.description))
    return steps


def _stored_version(env: Environment, txn: lmdb.Transaction) -> int:
    return msgspec.msgpack.decode(txn.get(b"schema_version", db=env.dbs["meta"]))


def _apply(env: Environment, step: Step) -> None:
    migration = MIGRATIONS[step.from_version]
    while True:
        try:
            with env.env.begin(write=True) as txn:
                # Re-read inside the transaction so a step can never apply twice.
                found = _stored_version(env, txn)
                if found != step.from_version:
                    raise MigrationError(f"expected schema {step.from_version} before {step.description!r}, "
                                         f"found {found}")
                migration.apply(env, txn)
                txn.put(b"schema_version", msgspec.msgpack.encode(step.to_version), db=env.dbs["meta"])
                # Records changed without write marks: no index snapshot may stand for this store now.
                txn.delete(marks.STORE_ID_KEY.encode(), db=env.dbs["meta"])
            return
        except lmdb.MapFullError:
            # The aborted transaction left nothing behind: grow and run the step again.
            if not env.grow():
                raise MigrationError(f"the store reached its maximum map size during {step.description!r}")


def migrate(data_dir: Path, *, dry_run: bool = False) -> MigrationReport:
    """Bring the store in ``data_dir`` to this memosd's schema (or, with ``dry_run``, say how).

    Needs the daemon stopped (the store lock is taken). Raises
    :class:`MigrationError` or :class:`~memosd.store.environment.StoreError`
    when the store is missing, newer than this memosd, or in use.
    """
    data_file = data_dir / "data.mdb"
    if not data_file.is_file() or data_file.stat().st_size == 0:
        raise MigrationError(f"there is no memosd store in {data_dir} (no data.mdb)")
    env = Environment(StoreConfig(path=data_dir), allow_older_schema=True)
    try:
        found = env.schema_version
        target = environment.SCHEMA_VERSION
        steps = plan(found, target)
        report = MigrationReport(data_dir=str(data_dir), found_version=found, target_version=target,
                                 version=found, dry_run=dry_run, steps=steps)
        if dry_run:
            return report
        for step in steps:
            try:
                _apply(env, step)
            except MigrationError:
                raise
            except Exception as exc:
                raise MigrationError(f"migration {step.from_version} -> {step.to_version} "
                                     f"({step.description}) failed: {exc!r}; the store is at schema "
                                     f"{report.version}") from exc
            report.version = step.to_version
        return report
    finally:
        env.close()


__all__ = ["MIGRATIONS", "Migration", "MigrationError", "MigrationReport", "Step", "StoreError", "migrate", "plan"]
