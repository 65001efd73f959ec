"""Binds each protocol operation to the engine method that serves it.

The operation's schema, help text and flags live in the shared protocol
registry; this table only adds the server-side behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memosd_client.protocol import OPERATIONS, Operation

from ..cluster.node import ClusterNode
from ..engine.engine import Engine


@dataclass(frozen=True, slots=True)
class Handler:
    op: Operation
    call: Callable[[str | None, Any], Any]
    is_async: bool


def engine_writes(engine: Engine) -> dict[str, Callable[[str | None, Any], Any]]:
    """The engine's handler of each operation that writes a namespace (what a cluster log carries)."""
    return {
        "remember": engine.remember,
        "update": engine.update,
        "forget": engine.forget,
        "unforget": engine.unforget,
        "purge": engine.purge,
        "import": engine.import_,
    }


def build_handlers(engine: Engine, daemon: Any, cluster: ClusterNode | None = None) -> dict[str, Handler]:
    """Map operation names to handlers; ``daemon`` serves hello/status/shutdown. With ``cluster``, every
    namespace operation is routed to the namespace's owner, and writes go through the cluster's log."""
    writes = engine_writes(engine)
    table: dict[str, tuple[Callable, bool]] = {
        "hello": (lambda ns, a: daemon.hello(a), False),
        "get": (engine.get, False),
        "list": (engine.list, False),
        "recall": (engine.recall, False),
        "encode": (lambda ns, a: engine.encode(a), False),
        "history": (engine.history, False),
        "stats": (lambda ns, a: engine.stats(ns), False),
        "export": (engine.export, False),
        "status": (lambda ns, a: daemon.status(), False),
        "shutdown": (lambda ns, a: daemon.request_shutdown(), False),
        "backup": (lambda ns, a: daemon.backup(a), True),
        "snapshot": (lambda ns, a: daemon.snapshot(), True),
        "keys_create": (lambda ns, a: daemon.keys_create(a), True),
        "keys_list": (lambda ns, a: daemon.keys_list(), False),
        "plugins": (lambda ns, a: daemon.plugins_info(), False),
        "tiers": (lambda ns, a: daemon.tiers_info(a), False),
        "page": (daemon.page_info, False),
        "entity": (daemon.entity_info, False),
        "keys_revoke": (lambda ns, a: daemon.keys_revoke(a), True),
    }
    table.update({name: (call, True) for name, call in writes.items()})
    if cluster is not None:
        for name, (call, _) in list(table.items()):
            op = OPERATIONS[name]
            if op.needs_namespace:
                table[name] = (cluster.routed(name, call, op.writes), True)
        table["stats"] = (cluster.stats(engine.stats), True)
    missing = set(OPERATIONS) - set(table)
    if missing:
        raise RuntimeError(f"operations without a handler: {sorted(missing)}")
    return {name: Handler(OPERATIONS[name], call, is_async) for name, (call, is_async) in table.items()}
