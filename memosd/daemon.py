"""The daemon's lifecycle: open the store, load RAM state, serve, stop cleanly.

SIGTERM/SIGINT stop accepting requests, answer those in flight, let the writer
commit what it was given, and close the store: no acknowledged write is lost.
SIGHUP re-reads the configuration and applies what can change live (log
settings, limits) without dropping connected clients. Under systemd the daemon
reports READY/RELOADING/STOPPING/STATUS and pings the watchdog only while both
the event loop and the writer thread are alive.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import shutil
import signal
import time
from collections.abc import Callable

import psutil

from memosd_client.protocol import PROTOCOL_VERSION
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import InvalidArgumentError, NotFoundError, UnsupportedVersionError

from . import __version__
from .cluster.node import ClusterNode
from .config import Config, ConfigError
from .engine.checkpoint import Checkpointer
from .engine.engine import Engine
from .events import EventBus
from .events.mqtt import MqttBridge, MqttSettings
from .events.zmq_publisher import ZmqEventPublisher
from .logs import configure_logging, get_logger
from .metrics import Metrics
from .plugins.dense import DenseChannel
from .plugins.registry import PluginRegistry
from .security.curve import load_or_create_server_keys, start_authenticator
from .security.grants import RIGHTS, Principal
from .security.keys import KeyStore
from .server.backpressure import Backpressure
from .server.handlers import build_handlers, engine_writes
from .server.server import Server
from .service.gc_pauses import PausePolicy
from .service.notify import Notifier, watchdog_interval
from .store import Environment, StoreConfig, WriterThread
from .slb.cache import SemanticLookasideBuffer
from .tiers import report as tier_report
from .tiers.manager import TierManager
from .tiers.policy import PolicyRunner
from .tiers.scheduler import Scheduler

log = get_logger("memosd.daemon")

CAPABILITIES = ["remember.batch", "recall.hybrid", "recall.vector", "update.history", "forget.soft",
                "purge.namespace", "export.paged", "import", "idempotency"]


class Daemon:
    """One running memosd: store, writer, engine and server."""

    def __init__(self, config: Config, reload_config: Callable[[], Config] | None = None):
        self.config = config
        self.reload_config = reload_config
        self.notifier = Notifier()
        self.started = time.time()
        self.load_seconds = 0.0
        self.env = Environment(StoreConfig(
            path=config.data_dir,
            map_size=config.store.map_size,
            max_map_size=config.store.max_map_size,
            durable=config.store.durable,
        ))
        self.writer = WriterThread(self.env)
        self.events = EventBus()
        # Plugins load before anything depends on them; a broken one is recorded and bypassed here.
        self.plugins = PluginRegistry(config.plugins)
        self.plugins.load()
        self.dense = DenseChannel(self.plugins, self.env, self.writer) if self.plugins.encoder else None
        retrieval = config.retrieval_config()
        self.tiers = TierManager(self.env, config.tiers, retrieval)
        self.engine = Engine(self.env, self.writer, config.limits, events=self.events, dense=self.dense,
                             tiers=self.tiers, slb=SemanticLookasideBuffer(config.slb), retrieval=retrieval)
        self.scheduler = Scheduler(self.tiers, self.writer,
                                   PolicyRunner(config.tiers.policy, self.plugins, config.tiers.policy_timeout_s),
                                   last_request_at=lambda: self.server.last_request_at,
                                   requests_waiting=lambda: self.server.requests_waiting())
        self.checkpointer = Checkpointer(self.engine, config.data_dir, config.store.checkpoint_interval_s,
                                         config.store.checkpoint_records)
        self.metrics = Metrics()
        self.gc_pauses = PausePolicy(lambda: self.server.last_request_at)
        self.keys = KeyStore(self.env, self.writer)
        self.server_keys = load_or_create_server_keys(config.data_dir / "curve" / "server.json")
        self.cluster: ClusterNode | None = None
        if config.cluster.enabled:
            writes = engine_writes(self.engine)
            self.cluster = ClusterNode(config.cluster, self.env, config.server.endpoints[0],
                                       lambda op, ns, args: writes[op](ns, args), self.keys)
        self.server = Server(
            build_handlers(self.engine, self, self.cluster),
            config.server.endpoints,
            config.server.admin_endpoint,
            max_message_bytes=config.limits.max_message_bytes,
            ipc_mode=config.server.ipc_mode,
            admin_ipc_mode=config.server.admin_ipc_mode,
            metrics=self.metrics,
            backpressure=Backpressure(config.limits.max_inflight_per_client, config.limits.rate_per_client),
            max_queued_per_client=config.limits.max_queued_per_client,
            cut_off_s=config.limits.cut_off_s,
            keys=self.keys,
            curve=self.server_keys if config.security.curve else None,
            tcp_principal=_tcp_principal(config.security.tcp_without_curve),
        )
        self.authenticator = None
        self.server.debug = config.log.level.lower() == "debug"
        self.publisher: ZmqEventPublisher | None = None
        self.mqtt: MqttBridge | None = None
        self.metrics_address: tuple[str, int] | None = None
        self._stop = asyncio.Event()
        self._extended_at = 0.0
        self.loop_lag_ms = 0.0

    # ------------------------------------------------------------------ operations served by the daemon

    def hello(self, args: m.HelloArgs) -> m.HelloResult:
        if args.protocol != PROTOCOL_VERSION:
            raise UnsupportedVersionError(
                f"client speaks protocol {args.protocol}; this daemon speaks {PROTOCOL_VERSION}",
                details={"supported": [PROTOCOL_VERSION]},
            )
        limits = self.config.limits
        enc = self.engine.encoder
        return m.HelloResult(
            protocol=PROTOCOL_VERSION,
            server_version=__version__,
            capabilities=CAPABILITIES + (["recall.dense"] if self.dense and self.dense.enabled else []),
            limits=m.Limits(
                max_message_bytes=limits.max_message_bytes,
                max_batch=limits.max_batch,
                max_k=limits.max_k,
                max_text_bytes=limits.max_text_bytes,
            ),
            encoder=m.EncoderInfo(name=enc.name, version=enc.version, dim=enc.dim),
            nodes=self.cluster.nodes() if self.cluster is not None else [],
        )

    def status(self) -> m.StatusResult:
        namespaces, memories = self.engine.totals()
        used, size = self.env.usage()
        return m.StatusResult(
            version=__version__,
            pid=os.getpid(),
            uptime_s=round(time.time() - self.started, 3),
            data_dir=str(self.config.data_dir),
            endpoints=list(self.server.bound),
            namespaces=namespaces,
            memories=memories,
            requests=self.server.requests,
            writer_queue=self.writer.pending,
            writer_alive=self.writer.alive,
            loop_lag_ms=round(self.loop_lag_ms, 3),
            map_used_bytes=used,
            map_size_bytes=size,
            writer_heartbeat_age_s=round(time.monotonic() - self.writer.heartbeat, 3),
            disk_free_bytes=shutil.disk_usage(self.config.data_dir).free,
            rss_bytes=psutil.Process().memory_info().rss,
            events_endpoint=self.publisher.endpoint if self.publisher else None,
            metrics_endpoint=(f"http://{self.metrics_address[0]}:{self.metrics_address[1]}/metrics"
                              if self.metrics_address else None),
            mqtt=self.mqtt.state() if self.mqtt else {},
            ops={op: m.OpStats(count=c, errors=e, p50_ms=p50, p99_ms=p99)
                 for op, (c, e, p50, p99) in self.server.stats.summary().items()},
            plugin_errors=self.plugins.errors(),
            migration=self.dense.report() if self.dense else None,
            indexes_from=self.engine.opened_from,
            load_s=round(self.load_seconds, 3),
            namespaces_opened=self.engine.opened,
            namespaces_rebuilt=self.engine.rebuilt,
            namespaces_replayed=self.engine.replayed,
            replayed_entries=self.engine.replayed_entries,
            snapshots_written=self.checkpointer.written,
            snapshot_at=self.checkpointer.last_at,
            cluster=self.cluster.info() if self.cluster is not None else None,
        )

    def plugins_info(self) -> m.PluginsResult:
        """Every discovered plugin with its status, and the dense channel's state."""
        dense = self.dense
        return m.PluginsResult(
            plugins=self.plugins.infos(),
            dense=bool(dense and dense.enabled),
            encoder=dense.encoder.identity if dense else "",
            backend=self.config.plugins.backend if dense else "",
            migration=dense.report() if dense else None,
        )

    def tiers_info(self, args: m.TiersArgs) -> m.TiersResult:
        """``memosd tiers``: one namespace's tiers, or every namespace's."""
        engine = self.engine
        if args.namespace:
            state = engine.namespaces.get(args.namespace)
            states = [] if state is None else [state.tiers]
        else:
            states = [engine.namespaces[name].tiers for name in sorted(engine.namespaces)]
        result = tier_report.tiers_result(self.tiers, self.scheduler, states)
        result.slb = engine.slb_info()
        return result

    def page_info(self, namespace: str | None, args: m.PageArgs) -> m.PageResult:
        """``memosd show page``: one page of a namespace."""
        if (args.page is None) == (args.memory is None):
            raise InvalidArgumentError("page needs exactly one of page or memory")
        state = self.engine.namespaces.get(namespace or "")
        page_id = args.page
        if state is not None and args.memory is not None:
            slot = state.slot_of.get(args.memory)
            if slot is None:
                raise NotFoundError(f"no memory {args.memory} in namespace {namespace!r}")
            unit = int(state.tiers.unit_of[slot])
            if unit <= 0:
                raise NotFoundError(f"memory {args.memory} is in short-term memory, not in a page yet")
            page_id = unit
        if state is None:
            raise NotFoundError(f"no page {page_id} in namespace {namespace!r}")
        return tier_report.page_result(self.tiers, state.tiers, page_id)

    def entity_info(self, namespace: str | None, args: m.EntityArgs) -> m.EntityResult:
        """``memosd show entity``: an entity's long-term profile in a namespace."""
        state = self.engine.namespaces.get(namespace or "")
        return tier_report.entity_result(self.tiers, state.tiers if state else None, args.name, args.limit)

    async def keys_create(self, args: m.KeysCreateArgs) -> m.KeysCreateResult:
        keys = self.cluster.keys if self.cluster is not None else self.keys  # the same on every node
        record, secret = await keys.create(args.name, args.grants)
        log.info("client key created", key=record.name, grants=[f"{g.namespace}:{g.rights}" for g in record.grants])
        return m.KeysCreateResult(name=record.name, public_key=record.public_key, secret_key=secret,
                                  server_public_key=self.server_keys.public.decode(), grants=record.grants)

    def keys_list(self) -> m.KeysListResult:
        return m.KeysListResult(keys=self.keys.list(), server_public_key=self.server_keys.public.decode())

    async def keys_revoke(self, args: m.KeysRevokeArgs) -> m.KeysRevokeResult:
        keys = self.cluster.keys if self.cluster is not None else self.keys
        record = await keys.revoke(args.name)
        log.info("client key revoked", key=record.name)
        return m.KeysRevokeResult(revoked=record.revoked_at is not None)

    def request_shutdown(self) -> m.ShutdownResult:
        asyncio.get_running_loop().call_soon(self._stop.set)
        return m.ShutdownResult(stopping=True)

    async def snapshot(self) -> m.SnapshotResult:
        """Write the index snapshot now (engine/checkpoint.py), while serving."""
        if not self.config.store.index_snapshot:
            raise InvalidArgumentError("index snapshots are off ([store] index_snapshot = false)")
        written = await self.checkpointer.write()
        if not written:
            from memosd_client.protocol.errors import InternalError

            raise InternalError("the index snapshot could not be written; the daemon log says why")
        return m.SnapshotResult(namespaces=written.namespaces, taken_at=written.taken_at,
                                seconds=round(written.seconds, 3))

    async def backup(self, args: m.BackupArgs) -> m.BackupResult:
        """Hot backup of the store into ``args.dest`` (a path on this host); other requests keep being served."""
        from pathlib import Path

        from memosd_client.protocol.errors import InternalError, InvalidArgumentError

        from .store.backup import BackupError, DestinationError, backup_result, hot_backup

        dest = Path(args.dest)
        log.info("backup started", dest=str(dest))
        try:
            # The copy runs in a child process; this thread only waits for it, off the event loop.
            manifest = await asyncio.to_thread(hot_backup, self.config.data_dir, dest)
        except DestinationError as exc:
            raise InvalidArgumentError(str(exc), details={"dest": str(dest)}) from None
        except BackupError as exc:
            log.error("backup failed", dest=str(dest), error=str(exc))
            raise InternalError(f"backup failed: {exc}") from None
        result = backup_result(dest, manifest)
        log.info("backup written", dest=str(dest), bytes=result.bytes, sha256=result.sha256,
                 namespaces=len(manifest.namespaces))
        return result

    # ------------------------------------------------------------------ lifecycle

    async def _watch_loop_lag(self) -> None:
        interval = 0.5
        while True:
            before = time.monotonic()
            await asyncio.sleep(interval)
            self.loop_lag_ms = max(0.0, (time.monotonic() - before - interval) * 1000)

    async def _ping_watchdog(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            # This coroutine running on time proves the loop is alive; the heartbeat proves the writer is.
            writer_ok = self.writer.alive and time.monotonic() - self.writer.heartbeat < max(2 * interval, 2.0)
            if writer_ok and self.loop_lag_ms < interval * 1000:
                self.notifier.watchdog()
            else:
                log.warning("watchdog withheld", writer_alive=self.writer.alive, loop_lag_ms=self.loop_lag_ms)

    def reload(self) -> None:
        """Apply a re-read configuration: log settings and limits change live; the rest needs a restart."""
        if self.reload_config is None:
            return
        self.notifier.reloading()
        try:
            new = self.reload_config()
        except ConfigError as exc:
            log.error("reload failed; keeping the running configuration", error=str(exc))
            self.notifier.ready("reload failed; running configuration kept")
            return
        configure_logging(new.log.level, new.log.format)
        self.config.log = new.log
        self.server.debug = new.log.level.lower() == "debug"
        self.config.limits = new.limits
        self.engine.limits = new.limits
        self.server.max_message_bytes = new.limits.max_message_bytes
        self.server.backpressure.max_inflight = new.limits.max_inflight_per_client
        self.server.backpressure.rate = new.limits.rate_per_client
        self.server.backpressure.burst = max(new.limits.rate_per_client, 1.0)
        self.server.max_queued_per_client = new.limits.max_queued_per_client
        self.server.cut_off_s = new.limits.cut_off_s
        restart_only = [f.name for f in dataclasses.fields(new)
                        if f.name not in ("log", "limits") and getattr(new, f.name) != getattr(self.config, f.name)]
        if restart_only:
            log.warning("changed settings need a restart to take effect", sections=restart_only)
        log.info("configuration reloaded")
        self.notifier.ready(self._status_line())

    def _start_events(self) -> None:
        events = self.config.events
        if events.pub_endpoint:
            self.publisher = ZmqEventPublisher(self.server.ctx, events.pub_endpoint, self.config.server.ipc_mode)
            self.events.add(self.publisher)
        if events.mqtt_url:
            self.mqtt = MqttBridge(
                MqttSettings(url=events.mqtt_url, prefix=events.mqtt_prefix, ingest=events.mqtt_ingest,
                             qos=events.mqtt_qos, queue_size=events.mqtt_queue,
                             max_payload=self.config.limits.max_message_bytes),
                self.engine.remember,
            )
            self.events.add(self.mqtt)
            self.mqtt.start()

    def _start_metrics(self) -> None:
        self.metrics.watch(self)
        if self.config.metrics.listen:
            self.metrics_address = self.metrics.serve(self.config.metrics.listen)
            log.info("metrics endpoint", address=f"http://{self.metrics_address[0]}:{self.metrics_address[1]}/metrics")

    def _loading(self, loaded: int) -> None:
        """Called while the store loads: a big store takes longer than systemd's start timeout."""
        now = time.monotonic()
        if now - self._extended_at > 5.0:
            self._extended_at = now
            self.notifier.send("EXTEND_TIMEOUT_USEC=30000000", f"STATUS=loading the store: {loaded:,} memories")

    def _status_line(self) -> str:
        namespaces, memories = self.engine.totals()
        return f"serving {memories} memories in {namespaces} namespaces"

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        self.notifier.status("loading the store")
        loaded_started = time.monotonic()
        loaded = self.engine.load(progress=self._loading,
                                  data_dir=self.config.data_dir if self.config.store.index_snapshot else None)
        # Loaded state lives for the whole run: keep it out of the cyclic GC's scans (fewer long pauses).
        gc.collect()
        gc.freeze()
        self.load_seconds = time.monotonic() - loaded_started
        log.info("store loaded", memories=loaded, namespaces=len(self.engine.namespaces),
                 seconds=round(self.load_seconds, 3), indexes_from=self.engine.opened_from,
                 opened=self.engine.opened, replayed=self.engine.replayed, rebuilt=self.engine.rebuilt, data_dir=str(self.config.data_dir))
        self.writer.keep_log = self.config.store.index_snapshot
        self.writer.start()
        if self.config.store.index_snapshot:
            self.checkpointer.start()
        if self.dense is not None:
            self.dense.start(loop)
        self.scheduler.start(loop)
        if self.cluster is not None:
            self.notifier.status("joining the cluster")
            try:
                await self.cluster.start()
            except Exception as exc:  # noqa: BLE001 - unreachable NATS, refused stream: say so, do not serve
                log.error("cannot join the cluster; check [cluster] servers and that NATS JetStream runs",
                          servers=self.config.cluster.servers, error=repr(exc))
                raise SystemExit(1) from None
        if self.config.security.curve:
            self.authenticator = start_authenticator(self.server.ctx, self.keys)
        elif any(e.startswith("tcp://") for e in self.config.server.endpoints):
            log.warning("tcp endpoint without CURVE: anyone who can reach it has these rights",
                        rights=self.config.security.tcp_without_curve)
        self.server.bind()
        self._start_events()
        self._start_metrics()
        self.server.start()
        tasks = [asyncio.create_task(self._watch_loop_lag()), asyncio.create_task(self.gc_pauses.run())]
        interval = watchdog_interval()
        if interval is not None:
            tasks.append(asyncio.create_task(self._ping_watchdog(interval)))
        log.info("ready", endpoints=self.server.bound, version=__version__, pid=os.getpid())
        self.notifier.ready(self._status_line())
        await self._stop.wait()
        log.info("stopping")
        self.notifier.stopping()
        if self.mqtt is not None:  # no new ingest while draining; events of the last writes may be lost
            await self.mqtt.stop()
        await self.server.drain()
        if self.cluster is not None:  # hand every namespace over now rather than when its lease ends
            await self.cluster.stop()
        await self.scheduler.stop()
        await self.checkpointer.stop()
        if self.dense is not None:
            self.dense.stop()
        self.writer.stop()
        if self.writer.alive:
            # Closing LMDB under a live writer could damage it: leave that to the process exit.
            log.error("the writer did not finish in time; exiting without closing the store")
            raise SystemExit(1)
        if self.config.store.index_snapshot:
            self._write_snapshot()
            if self.dense is not None:
                self.dense.apply_pending()
                self._save_dense()
        for task in tasks:
            task.cancel()
        if self.publisher is not None:
            self.publisher.close()
        self.metrics.close()
        if self.authenticator is not None:
            self.authenticator.stop()
        await self.server.close()
        self.env.close()
        self.notifier.close()
        log.info("stopped")

    def _write_snapshot(self) -> None:
        """The indexes for the next start (engine/snapshot.py); a failure only costs that start a rebuild."""
        started = time.monotonic()
        try:
            path = self.engine.write_snapshot(self.config.data_dir)
        except Exception as exc:  # noqa: BLE001 - disk full, permissions: the store itself is intact
            log.warning("index snapshot not written: the next start rebuilds the indexes", error=repr(exc))
            return
        log.info("index snapshot written", path=str(path), bytes=path.stat().st_size,
                 seconds=round(time.monotonic() - started, 3))


    def _save_dense(self) -> None:
        """Dense backends that can save themselves, for the next start (plugins/saved_spaces.py)."""
        started = time.monotonic()
        written = self.dense.save()
        if written:
            log.info("dense indexes saved", namespaces=written, seconds=round(time.monotonic() - started, 3))


def _tcp_principal(rights: str) -> Principal | None:
    """The principal of unauthenticated TCP clients (None: refuse them)."""
    if rights == "none":
        return None
    if rights not in RIGHTS:
        raise ConfigError(f"security.tcp_without_curve must be admin, write, read or none, not {rights!r}")
    return Principal("tcp-anonymous", (m.Grant(namespace="*", rights=rights),))


def serve(config: Config, reload_config: Callable[[], Config] | None = None) -> int:
    """Run a daemon until it is told to stop; returns the process exit code."""
    daemon = Daemon(config, reload_config)
    asyncio.run(daemon.run())
    return 0
