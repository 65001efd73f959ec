"""A memosd node of a cluster: routing, ownership and the log, on one NATS connection.

A request for a namespace is served here only while this node holds the
namespace's lease and has fenced its log. Otherwise the node answers MOVED with
the owner's endpoint, or UNAVAILABLE (retryable) while an owner that stopped
answering still holds the lease. A namespace nobody holds is taken by the node
that rendezvous hashing prefers among the live nodes, on its first request.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import nats
from nats.errors import Error as NatsError
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError
from nats.js.errors import NotFoundError as StreamNotFound

from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import MemosdError, MovedError, UnavailableError

from .. import __version__
from ..config import ClusterConfig
from ..engine import write_context
from ..engine.registry import Allocator, check_namespace
from ..logs import get_logger
from ..store.environment import Environment
from ..security.keys import KeyStore
from .keys_log import KeyLog
from .leases import Lease, Leases, LeaseValue
from .members import Membership, NodeRecord
from .namespace_log import ApplyOp, LostOwnership, NamespaceLog
from .naming import Names, from_token
from .placement import preferred_owner

log = get_logger("memosd.cluster")
STREAM_EXISTS = 10058


class ClusterStoreError(RuntimeError):
    """The node's store cannot serve in cluster mode (see ``ClusterNode._check_store``)."""


@dataclass(slots=True)
class ClusterCounters:
    takeovers: int = 0
    handed_over: int = 0
    lost: int = 0
    moved: int = 0
    unavailable: int = 0


class ClusterNode:
    """This daemon's membership of a cluster (``[cluster] enabled = true``)."""

    def __init__(self, cfg: ClusterConfig, env: Environment, endpoint: str, apply_op: ApplyOp, keys: KeyStore):
        self.cfg = cfg
        self.env = env
        self.names = Names(cfg.prefix)
        self.name = cfg.node or socket.gethostname()
        self.endpoint = cfg.advertise or endpoint
        self.apply_op = apply_op
        self.key_store = keys
        self.keys: KeyLog | None = None
        """Client keys and grants through the log (create and revoke go here in cluster mode)."""
        self.logs: dict[str, NamespaceLog] = {}
        """The namespaces this node owns (or is taking over)."""
        self.counters = ClusterCounters()
        self.nc = None
        self.js = None
        self.leases: Leases | None = None
        self.members: Membership | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._leaving: dict[str, asyncio.Task] = {}
        """Namespaces being handed over right now, each by its own task (see _hand_over)."""
        self._steady: dict[str, int] = {}
        """Upkeep rounds in a row in which each preferred node answered (see _rebalance)."""
        self._task: asyncio.Task | None = None
        self._watch: asyncio.Task | None = None
        self.started_at = time.time()
        self.owners: dict[str, str] = {}
        """Every namespace's lease holder, followed from the lease bucket (for status, not for routing)."""
        self.log_stream: m.LogStream | None = None
        self.refreshed_at: float | None = None

    # ------------------------------------------------------------------ life cycle

    async def start(self, join_timeout_s: float = 60.0) -> None:
        """Connect and set up the stream and buckets. JetStream may still be electing leaders (a cluster
        that has just started, or a new stream), so each step is retried until ``join_timeout_s``."""
        self._check_store()
        self.nc = await nats.connect(servers=self.cfg.servers, name=f"memosd {self.name}", connect_timeout=5,
                                     reconnect_time_wait=0.25, max_reconnect_attempts=-1,
                                     allow_reconnect=True)
        self.js = self.nc.jetstream(timeout=5.0)
        self.keys = KeyLog(self.js, self.names, self.env, self.key_store)
        self.leases = Leases(self.js, self.names, self.name, self.cfg.lease_s, self.cfg.replicas)
        self.members = Membership(self.nc, self.js, self.names,
                                  NodeRecord(self.name, self.endpoint, self.started_at, __version__),
                                  self.cfg.lease_s, self.cfg.replicas)
        deadline = time.monotonic() + join_timeout_s
        for step in (self._ensure_stream, self.keys.start, self.leases.open, self.members.start, self._look_at_log):
            while True:
                try:
                    await step()
                    break
                except (NatsError, asyncio.TimeoutError) as exc:
                    if time.monotonic() > deadline:
                        raise
                    log.info("JetStream not ready yet; retrying", step=step.__name__, error=repr(exc))
                    await asyncio.sleep(0.5)
        self._watch = asyncio.create_task(self._follow_leases())
        self._task = asyncio.create_task(self._keep_up())
        log.info("joined the cluster", node=self.name, endpoint=self.endpoint, nodes=sorted(self.members.nodes))

    def _check_store(self) -> None:
        """In cluster mode every namespace in the store is a copy of its log. A namespace written while
        the store ran as a single node is in no log: serving it would answer from data no other node has,
        and lose it at the first failover. Such a store is refused, with the way out."""
        meta, names = self.env.dbs["meta"], self.env.dbs["namespaces"]
        with self.env.read() as txn:
            outside = [name for name, _ in Allocator.all_namespaces(txn, names)
                       if write_context.applied_position(txn, meta, name) is None]
        if outside:
            raise ClusterStoreError(
                f"this store holds {len(outside)} namespace(s) written outside cluster mode (e.g. "
                f"{', '.join(sorted(outside)[:3])}); start cluster nodes on empty stores and bring such data "
                "in through the cluster (memosd export, then memosd import against a node)")

    async def _ensure_stream(self) -> None:
        config = StreamConfig(name=self.names.stream, subjects=[self.names.log_subjects, self.names.keys_subject],
                              num_replicas=self.cfg.replicas, storage=StorageType.FILE,
                              retention=RetentionPolicy.LIMITS, allow_direct=True)
        try:
            await self.js.add_stream(config)
        except BadRequestError as exc:
            if exc.err_code != STREAM_EXISTS:
                raise
            await self.js.update_stream(config)  # made by an older memosd: same name, other subjects

    async def stop(self) -> None:
        """Leave cleanly: finish the writes in flight, give every lease up, drop this node's record."""
        for task in (self._task, self._watch):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._task, self._watch) if t is not None), return_exceptions=True)
        # A rebalance hand-over that the cancel interrupted goes on in its own task: finish it, or its lease
        # would stay held by a node that is gone until it expired.
        await asyncio.gather(*self._leaving.values(), return_exceptions=True)
        for name in list(self.logs):
            await self._hand_over(name)
        if self.keys is not None:
            await self.keys.stop()
        if self.members is not None:
            await self.members.leave()
        if self.nc is not None:
            await self.nc.close()

    async def _keep_up(self) -> None:
        """Heartbeat, lease renewal and rebalancing, every third of the lease time."""
        while True:
            await asyncio.sleep(self.cfg.lease_s / 3)
            try:
                await self.members.beat()
                for name in list(self.logs):
                    await self._renew(name)
                await self._rebalance()
                await self._look_at_log()
            except Exception as exc:  # noqa: BLE001 - a dead upkeep task would let every lease lapse
                log.warning("cluster upkeep failed; leases lapse unless it recovers", error=repr(exc))

    async def _look_at_log(self) -> None:
        """The log stream's size and replicas (JetStream's own view), for status and metrics."""
        info = await self.js.stream_info(self.names.stream)
        cluster = info.cluster
        replicas = []
        if cluster is not None:
            if cluster.leader:
                replicas.append(m.LogReplica(name=cluster.leader, leader=True, current=True, lag=0, active_s=None))
            for peer in cluster.replicas or []:
                replicas.append(m.LogReplica(name=peer.name or "?", leader=False, current=bool(peer.current),
                                             lag=peer.lag or 0,
                                             active_s=None if peer.active is None else round(peer.active / 1e9, 3)))
        self.log_stream = m.LogStream(name=self.names.stream, messages=info.state.messages, bytes=info.state.bytes,
                                      replicas=replicas)
        self.refreshed_at = time.monotonic()

    async def _follow_leases(self) -> None:
        """Keep ``owners`` up to date from the lease bucket's updates (a lease that simply expires sends
        none: its holder stays listed until someone takes the namespace)."""
        while True:
            try:
                watcher = await self.leases.kv.watchall()
                async for entry in watcher:
                    if entry is None:  # the end of the initial values
                        continue
                    namespace = from_token(entry.key)
                    if entry.operation in (None, "PUT") and entry.value:
                        self.owners[namespace] = msgspec.msgpack.decode(entry.value, type=LeaseValue).node
                    else:
                        self.owners.pop(namespace, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a reconnect ends the watch: start it again
                log.warning("lease watch interrupted; restarting it", error=repr(exc))
                await asyncio.sleep(1.0)

    async def _renew(self, name: str) -> None:
        nslog = self.logs.get(name)
        if nslog is None or nslog.lease is None:
            return
        lease = await self.leases.renew(nslog.lease)
        if lease is None:
            self._drop(name, "lease lost")
        else:
            nslog.lease = lease

    async def _rebalance(self) -> None:
        """Hand a namespace over to the node placement prefers once that node has answered two upkeep
        rounds in a row (a node joined): a node that was only paused does not get its namespaces back
        the instant it resumes, and ownership does not flap with a node that comes and goes."""
        answered: dict[str, bool] = {}
        for name in list(self.logs):
            preferred = preferred_owner(name, self.members.nodes)
            if preferred == self.name:
                continue
            if preferred not in answered:
                answered[preferred] = await self.members.answers(preferred)
            if answered[preferred] and self._steady.get(preferred, 0) >= 1:
                await self._hand_over(name)
        self._steady = {node: self._steady.get(node, 0) + 1 for node, up in answered.items() if up}

    async def _hand_over(self, name: str) -> None:
        """Give ``name`` up. Once begun, a hand-over runs to its end even if the caller is cancelled (the
        upkeep task is, at stop): stopping halfway would leave the lease held with nobody serving."""
        task = self._leaving.get(name)
        if task is None:
            if name not in self.logs:
                return
            task = self._leaving[name] = asyncio.create_task(self._give_up(name))
        await asyncio.shield(task)

    async def _give_up(self, name: str) -> None:
        nslog = self.logs.get(name)  # requests meanwhile wait (_leaving): this node must not take it straight back
        if nslog is None:  # dropped (lease lost) since the hand-over was asked for
            self._leaving.pop(name, None)
            return
        try:
            await nslog.stop()
            self.logs.pop(name, None)
            if nslog.lease is not None and not nslog.lost:
                try:
                    await self.leases.release(nslog.lease)
                except (NatsError, asyncio.TimeoutError) as exc:
                    log.warning("lease not released; it expires by itself", namespace=name, error=repr(exc))
        finally:
            self._leaving.pop(name, None)
        self.counters.handed_over += 1
        log.info("namespace handed over", namespace=name)

    def _drop(self, name: str, why: str) -> None:
        nslog = self.logs.pop(name, None)
        if nslog is not None:
            nslog.ready = False
            nslog.lost = True
            self.counters.lost += 1
            log.warning("namespace no longer owned here", namespace=name, why=why)

    # ------------------------------------------------------------------ serving

    def serving(self, namespace: str) -> bool:
        """Whether a request for ``namespace`` may be answered here right now, without asking NATS."""
        nslog = self.logs.get(namespace)
        return nslog is not None and nslog.ready and nslog.lease.valid()

    async def ensure_owner(self, namespace: str, reading: bool = False) -> NamespaceLog | None:
        """This node's log of ``namespace``, taking the namespace if it should; else MOVED/UNAVAILABLE.

        ``reading``: None when nobody owns the namespace and its log is empty (it has no memories):
        a read is answered as empty without taking a lease or writing a fence."""
        if self.serving(namespace):
            return self.logs[namespace]
        lock = self._locks.setdefault(namespace, asyncio.Lock())
        try:
            async with lock:
                return await self._own(namespace, reading)
        except (NatsError, asyncio.TimeoutError) as exc:
            self.counters.unavailable += 1
            raise UnavailableError(f"the cluster is not reachable from this node: {exc!r}",
                                   details={"retry_after_s": 0.5}) from None
        except UnavailableError:
            self.counters.unavailable += 1
            raise
        except MovedError:
            self.counters.moved += 1
            raise
        finally:
            # One lock per namespace being decided, not per name ever asked for.
            if namespace not in self.logs and not lock.locked() and not getattr(lock, "_waiters", None):
                self._locks.pop(namespace, None)

    async def _own(self, namespace: str, reading: bool) -> NamespaceLog | None:
        if namespace in self._leaving:
            raise UnavailableError(f"namespace {namespace!r} is being handed over; retry",
                                   details={"retry_after_s": 0.1})
        nslog = self.logs.get(namespace)
        if nslog is not None:
            if nslog.ready and not nslog.lease.valid():
                # Paused or partitioned past the lease: ask before serving again.
                lease = await self.leases.renew(nslog.lease)
                if lease is None:
                    self._drop(namespace, "lease expired")
                else:
                    nslog.lease = lease
            elif not nslog.ready and not nslog.lost:
                await self._take_over(nslog, nslog.lease)  # a write failed to apply here: replay, re-fence
            if self.serving(namespace):
                return self.logs[namespace]
        holder = await self.leases.holder(namespace)
        if holder is None and reading and await self._log_is_empty(namespace):
            return None
        if holder is None:
            preferred = preferred_owner(namespace, self.members.nodes)
            if preferred not in (None, self.name):
                # Before sending the client elsewhere, look at membership as the bucket has it now: two
                # nodes whose cached views differ (one just joined) would otherwise send it back and forth.
                await self.members.refresh()
                preferred = preferred_owner(namespace, self.members.nodes)
            if preferred not in (None, self.name) and await self.members.answers(preferred):
                raise self._moved(namespace, preferred)
            lease = await self.leases.acquire(namespace)
        elif holder.node == self.name:
            lease = await self.leases.adopt(namespace, holder)  # this node, restarted within the lease
        elif await self.members.answers(holder.node):
            raise self._moved(namespace, holder.node)
        else:
            raise UnavailableError(
                f"namespace {namespace!r} is owned by node {holder.node!r}, which does not answer; "
                f"another node takes it over when its lease ends (at most {self.cfg.lease_s:g}s)",
                details={"retry_after_s": round(self.cfg.lease_s / 4, 3), "node": holder.node})
        if lease is None:  # another node took it a moment ago
            raise UnavailableError(f"namespace {namespace!r} is changing owner; retry",
                                   details={"retry_after_s": 0.1})
        nslog = NamespaceLog(self.js, self.names, self.env, namespace, self.name, self.apply_op,
                             self.cfg.max_entry_ops, self.nc.max_payload)
        self.logs[namespace] = nslog
        await self._take_over(nslog, lease)
        self.counters.takeovers += 1
        return nslog

    async def _log_is_empty(self, namespace: str) -> bool:
        try:
            await self.js.get_last_msg(self.names.stream, self.names.subject(namespace))
        except StreamNotFound:
            return True
        return False

    async def _take_over(self, nslog: NamespaceLog, lease: Lease) -> None:
        try:
            await nslog.take_over(lease)
        except BaseException:
            self.logs.pop(nslog.namespace, None)
            try:
                await self.leases.release(lease)
            except (NatsError, asyncio.TimeoutError):
                pass
            raise

    def _moved(self, namespace: str, node: str) -> MemosdError:
        record = self.members.nodes.get(node)
        if record is None:
            return UnavailableError(f"namespace {namespace!r} belongs on node {node!r}, not yet known here",
                                    details={"retry_after_s": 0.2, "node": node})
        return MovedError(f"namespace {namespace!r} is served by node {node!r} at {record.endpoint}",
                          details={"endpoint": record.endpoint, "node": node})

    async def write(self, op: str, namespace: str, args: Any) -> Any:
        """A write in cluster mode: in the log first, then in this node's store, then answered."""
        nslog = await self.ensure_owner(namespace)
        try:
            return await nslog.write(op, args)
        except LostOwnership:
            self._drop(namespace, "fenced by another node")
            await self.ensure_owner(namespace)  # raises MOVED or UNAVAILABLE for the client to follow
            raise UnavailableError("ownership changed during the write; retry", details={"retry_after_s": 0.1})

    def routed(self, op: str, call: Callable[[str | None, Any], Any],
               is_write: bool) -> Callable[[str | None, Any], Awaitable[Any]]:
        """The handler for a namespace operation in cluster mode."""
        if is_write:
            async def write(namespace: str | None, args: Any) -> Any:
                return await self.write(op, check_namespace(namespace), args)
            return write

        async def read(namespace: str | None, args: Any) -> Any:
            name = check_namespace(namespace)
            if not self.serving(name):
                # None: nothing was ever written to it, and this store holds nothing of it (start() checks
                # that every local namespace came from the log): the engine answers it as empty.
                await self.ensure_owner(name, reading=True)
            return call(namespace, args)
        return read

    def stats(self, engine_stats: Callable[..., m.StatsResult]) -> Callable[[str | None, Any], Awaitable[Any]]:
        """``stats`` in cluster mode: one namespace at its owner; all of them as the ones this node owns
        (its store may still hold copies of namespaces that moved, which it no longer answers for)."""
        async def stats(namespace: str | None, args: Any) -> m.StatsResult:
            if namespace:
                name = check_namespace(namespace)
                if not self.serving(name):
                    await self.ensure_owner(name, reading=True)
                return engine_stats(namespace)
            return engine_stats(None, among={name for name in self.logs if self.serving(name)})
        return stats

    # ------------------------------------------------------------------ reporting

    def nodes(self) -> list[m.ClusterNodeInfo]:
        if self.members is None:
            return []
        return [m.ClusterNodeInfo(name=r.name, endpoint=r.endpoint, version=r.version)
                for r in sorted(self.members.nodes.values(), key=lambda r: r.name)]

    def info(self) -> m.ClusterInfo:
        return m.ClusterInfo(
            node=self.name,
            endpoint=self.endpoint,
            nodes=self.nodes(),
            owned=[m.OwnedNamespace(namespace=name, log_seq=nslog.last_seq, lease=nslog.lease.epoch,
                                    lease_valid_s=round(max(nslog.lease.valid_until - time.monotonic(), 0.0), 3),
                                    ready=nslog.ready, pending=nslog.pending, replayed_entries=nslog.replayed_entries,
                                    appended_entries=nslog.appended_entries)
                   for name, nslog in sorted(self.logs.items())],
            connected=bool(self.nc is not None and self.nc.is_connected),
            takeovers=self.counters.takeovers,
            handed_over=self.counters.handed_over,
            lost=self.counters.lost,
            moved=self.counters.moved,
            unavailable=self.counters.unavailable,
            namespaces_per_node=dict(Counter(self.owners.values())),
            log=self.log_stream,
            refreshed_s=None if self.refreshed_at is None else round(time.monotonic() - self.refreshed_at, 3),
        )
