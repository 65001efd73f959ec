"""Daemon configuration: embedded defaults < TOML file < environment < command-line flags.

Environment overrides are named ``MEMOSD_<SECTION>_<KEY>`` (for example
``MEMOSD_STORE_DATA_DIR=/var/lib/memosd`` or ``MEMOSD_LIMITS_MAX_K=500``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memosd_client.endpoints import default_admin_endpoint, default_endpoint

from .retrieval.config import RetrievalConfig


class ConfigError(Exception):
    """The configuration is invalid (message meant for an operator)."""


def _default_data_dir() -> str:
    state = os.environ.get("STATE_DIRECTORY")  # set by systemd's StateDirectory=
    if state:
        return state.split(":")[0]
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return str(Path(xdg) / "memosd")


@dataclass(slots=True)
class ServerConfig:
    endpoints: list[str] = field(default_factory=lambda: [default_endpoint()])
    """Agent-facing ROUTER endpoints (ipc:// and/or tcp://)."""
    admin_endpoint: str = field(default_factory=default_admin_endpoint)
    """Admin ROUTER endpoint (status, shutdown): a separate socket, never behind bulk work."""
    ipc_mode: int = 0o660
    """File mode of the agent ipc sockets: owner and group may connect."""
    admin_ipc_mode: int = 0o600
    """File mode of the admin ipc socket: only the daemon's user (and root) may stop it or mint keys."""


@dataclass(slots=True)
class StoreSection:
    data_dir: str = field(default_factory=_default_data_dir)
    map_size: int = 1 << 30
    max_map_size: int = 1 << 40
    durable: bool = True
    """fsync on every commit. False: commits survive a process crash, not a power loss."""
    index_snapshot: bool = True
    """Write the in-RAM indexes to ``<data_dir>/indexes/`` (at a clean stop, and every
    ``checkpoint_interval_s`` while writes come) and open them at the next start instead of rebuilding
    them from the store: each namespace written since is rebuilt (docs/indexes.md). Costs about as
    much disk as the daemon's RAM for indexes."""
    checkpoint_interval_s: float = 300.0
    """Seconds between index snapshots written while serving, when something was written since the
    last; a start after a crash replays what was written after it. 0: only at a clean stop."""
    checkpoint_records: int = 200_000
    """Also write one as soon as writes since the last changed this many memory and page records, and
    as many as the store holds memories (a snapshot costs about what replaying that many would), so
    that a bulk load cannot leave much more than a rebuild's worth of replay behind. 0: by time only."""


@dataclass(slots=True)
class LimitsConfig:
    max_message_bytes: int = 16 << 20
    max_batch: int = 10_000
    max_k: int = 1_000
    max_text_bytes: int = 64 << 10
    max_list: int = 1_000
    max_inflight_per_client: int = 256
    """Writes one client connection may have waiting for a commit; beyond it: BUSY."""
    rate_per_client: float = 0.0
    """Requests per second per client connection (token bucket, burst = rate); 0 = unlimited."""
    max_queued_per_client: int = 64
    """Requests (reads and writes) one client connection may have queued or in flight; beyond it: BUSY."""
    cut_off_s: float = 10.0
    """How long a client connection that leaves its replies unread (its send queue full) is ignored."""


@dataclass(slots=True)
class SecurityConfig:
    curve: bool = False
    """Require CURVE encryption and a known client key on every TCP endpoint."""
    tcp_without_curve: str = "none"
    """Rights of TCP clients while curve is off (anyone who can reach the port): admin, write, read or none."""


def _default_events_endpoint() -> str:
    from memosd_client.endpoints import runtime_dir

    return f"ipc://{runtime_dir() / 'memosd-events.sock'}"


@dataclass(slots=True)
class EventsConfig:
    pub_endpoint: str = field(default_factory=_default_events_endpoint)
    """ZeroMQ PUB endpoint for events; empty turns it off."""
    mqtt_url: str = ""
    """MQTT broker, e.g. mqtt://127.0.0.1:1883; empty turns MQTT off."""
    mqtt_prefix: str = "memosd"
    mqtt_ingest: bool = False
    """Store memories published to <prefix>/ingest/<namespace>."""
    mqtt_qos: int = 1
    mqtt_queue: int = 10_000
    """Events kept while the broker is unreachable; beyond it the oldest are dropped (and counted)."""


@dataclass(slots=True)
class MetricsConfig:
    listen: str = ""
    """host:port of the Prometheus endpoint (/metrics); empty turns it off."""


@dataclass(slots=True)
class LogConfig:
    level: str = "info"
    format: str = "json"
    """json (one object per line) or console."""


@dataclass(slots=True)
class PluginsConfig:
    """Plugin selection (entry-point names; see docs/plugins.md)."""

    encoder: str = ""
    """Dense encoder from memosd.encoders (e.g. hash-dense); empty: no dense channel, lexical retrieval only."""
    backend: str = "numpy"
    """Vector index from memosd.backends used by the dense channel."""
    dense_weight: float = 0.5
    """Weight of the dense channel in score fusion: minmax(lexical) + dense_weight * minmax(cosine)."""
    timeout_s: float = 5.0
    """Longest one plugin call (import, encode, search) may run before the plugin is marked failed and bypassed."""


@dataclass(slots=True)
class TiersConfig:
    """Memory tiers, residency budget and the background scheduler (see docs/tiers.md)."""

    stm_capacity: int = 8
    """Newest turns kept per (namespace, session) in short-term memory before they are paged."""
    stm_idle_s: float = 900.0
    """A session with no new turn for this long has its short-term turns paged too."""
    page_max_turns: int = 8
    """A page closes when it holds this many turns."""
    page_min_turns: int = 3
    """Below this size a page takes the next turn of its session without the similarity test."""
    page_gap_s: float = 1800.0
    """A turn more than this much later than the page's last turn (event time, else write time) starts a new page."""
    page_continuity: float = 0.02
    """A turn joins a page of page_min_turns or more only if its cosine to the page's turns is at least this."""
    page_close_s: float = 3600.0
    """An open page whose session got no new turn for this long is closed (and can be consolidated)."""
    heat_half_life_s: float = 86400.0
    """Heat halves every this many seconds without a hit."""
    heat_size_weight: float = 0.25
    """Weight of ln(1 + turns) in a page's heat."""
    cold_heat: float = 0.1
    """A consolidated page whose heat falls below this is demoted to long-term memory."""
    hot_heat: float = 2.0
    """A long-term page whose heat rises to this (about two recent hits) is promoted back to mid-term."""
    budget_bytes: int = 256 * 1024 * 1024
    """RAM allowed for evictable per-page vectors over all namespaces; 0 = no limit."""
    min_available_bytes: int = 256 * 1024 * 1024
    """If the machine's available memory falls below this, pages are evicted down to half the budget."""
    policy: str = "extractive"
    """Consolidation policy: the built-in "extractive" or a memosd.policies plugin (falls back to extractive)."""
    policy_timeout_s: float = 180.0
    """Longest one plugin policy call may take before the page is consolidated with the built-in policy."""
    consolidate: bool = True
    """Turn closed pages into long-term knowledge in the background."""
    tick_s: float = 0.25
    """How long the scheduler waits before it looks for work again after finding none."""
    step_ms: float = 1.0
    """Longest stretch the scheduler holds the event loop before requests may run: its work is sliced by
    time, not by items (docs/tiers.md, "The scheduler")."""
    busy_share: float = 0.1
    """Most of the event loop's time the scheduler takes while clients are active (without them it takes
    what it needs)."""
    tick_turns: int = 1024
    """Most short-term turns paged per writer job (fewer when fewer fit in a step)."""
    tick_pages: int = 64
    """Most pages handed to the consolidation policy at once."""
    consolidate_pages_per_s: float = 0.0
    """Most pages consolidated per second; 0: as fast as the policy goes (a limit spreads out the calls of a
    costly plugin policy)."""
    candidate_pages: int = 8
    """Pages taken from the coarse index per query (the fine stage also takes the pages of the best lexical hits)."""
    candidate_lexical: int = 20
    """Best lexical hits whose pages join the fine stage."""
    coarse_hash_weight: float = 0.0
    """Weight of the hashed n-gram channel beside BM25 when a text query scores the coarse units (pages,
    rings); 0 scores them by BM25 alone, as cross-validation on LoCoMo chose (0.5 before: same recall,
    about a sixth of the time of a recall at 100k). Recall by vector always uses the hashed channel."""
    fine_weight: float = 0.0
    """Weight of a candidate turn's hashed n-gram (fine vector) score in its final score; 0 (chosen by
    cross-validation on LoCoMo) scores no fine vectors, so text recall faults no page in."""
    page_weight: float = 1.0
    """Weight of a turn's page score (coarse) in its final score."""
    neighbor_weight: float = 0.45
    """Weight of the adjacent turns' scores in a turn's final score (conversation context)."""
    knowledge_weight: float = 0.0
    """Weight of consolidated facts' scores on their source turns."""
    time_weight: float = 0.3
    """Added to a candidate turn's score when the question asks for a time ("when", "how long") and the
    turn says one ("yesterday", "in 2019", "for three years")."""
    period_weight: float = 1.0
    """Added to a candidate turn's score when the question names a period ("in June 2023", "in May") and
    the turn was said in it or talks about a time in it."""
    speaker_weight: float = 0.3
    """Added to a candidate turn's score when the question names its speaker (a transcript line
    "Alice: ..." is Alice's)."""
    knowledge_candidates: int = 0
    """Best facts whose pages join the fine stage; 0 skips the knowledge lookup (on LoCoMo dev it changed
    nothing, 0.734 either way, while costing a search over every fact per recall)."""

    @property
    def searches_knowledge(self) -> bool:
        """Whether recall looks facts up (``knowledge_candidates`` or ``knowledge_weight`` above 0): only
        then are the facts indexed in RAM (docs/tiers.md, "Facts in RAM")."""
        return bool(self.knowledge_candidates or self.knowledge_weight)


@dataclass(slots=True)
class SlbConfig:
    """The semantic lookaside buffer in front of recall (docs/slb.md). Off by default: see the figures there."""

    enabled: bool = False
    threshold: float = 0.85
    """A query reuses an entry whose query vector has at least this cosine with its own."""
    session_entries: int = 64
    """Entries per (namespace, session filter)."""
    shared_entries: int = 1024
    """Entries per namespace, shared by all sessions."""
    max_sessions: int = 4096
    """Session levels kept (least recently used dropped)."""
    verify_every: int = 16
    """Every this many hits, the full search runs too and the agreement of the two top-k is recorded (0 = never)."""
    prefetch: bool = False
    """After a recall, warm the pages adjacent in time and topic to its hits (slb/prefetch.py); independent of
    ``enabled``. Off by default: see the figures in docs/slb.md."""
    prefetch_pages: int = 4
    """Most pages warmed per recall."""


def _section_like(frozen: type, name: str, doc: str) -> type:
    """A mutable settings section with the fields and defaults of the frozen dataclass ``frozen``.

    The defaults stay in one place (the frozen class), so the section cannot drift from the code it feeds.
    """
    fields = [(f.name, f.type, field(default=f.default)) for f in dataclasses.fields(frozen)]
    section = dataclasses.make_dataclass(name, fields, slots=True, namespace={"__doc__": doc})
    section.__module__ = __name__
    return section


RetrievalSection = _section_like(
    RetrievalConfig, "RetrievalSection",
    "The hybrid index's tunables (memosd/retrieval/config.py: BM25 k1 and b, hash encoder, channel weights).")


@dataclass(slots=True)
class ClusterConfig:
    """Cluster mode (docs/cluster.md): the node's writes go to a NATS JetStream log before they are
    acknowledged, and each namespace is served by the node that holds its lease."""

    enabled: bool = False
    """False (the default): a single node on its embedded LMDB, with no NATS."""
    servers: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    """NATS server URLs (any of the cluster's; the client finds the others)."""
    node: str = ""
    """This node's name, unique in the cluster (default: the host name)."""
    advertise: str = ""
    """The endpoint other nodes send clients to for the namespaces this node owns (default: the first
    of ``[server] endpoints``; use a tcp:// address reachable by every client)."""
    replicas: int = 3
    """Copies of the log and the lease and node buckets that JetStream keeps (quorum-acknowledged)."""
    lease_s: float = 6.0
    """How long a namespace's lease lasts without renewal: the longest an owner that died keeps its
    namespaces from being taken over. The owner renews at a third of it."""
    prefix: str = "memosd"
    """Names of the stream (``<PREFIX>_log``), buckets and subjects, so clusters can share NATS."""
    max_entry_ops: int = 256
    """Operations of one namespace that wait while a log append is in flight are appended together,
    up to this many per log entry."""


@dataclass(slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    store: StoreSection = field(default_factory=StoreSection)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    tiers: TiersConfig = field(default_factory=TiersConfig)
    slb: SlbConfig = field(default_factory=SlbConfig)
    retrieval: RetrievalSection = field(default_factory=RetrievalSection)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    @property
    def data_dir(self) -> Path:
        return Path(self.store.data_dir).expanduser()

    def retrieval_config(self) -> RetrievalConfig:
        """The ``[retrieval]`` section as the frozen config the indexes take."""
        return RetrievalConfig(**dataclasses.asdict(self.retrieval))


def _coerce(value: Any, target: Any, where: str) -> Any:
    kind = type(target)
    if isinstance(value, str) and kind is not str:
        if kind is bool:
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{where}: expected a boolean, got {value!r}")
        if kind is int:
            try:
                return int(value, 0)
            except ValueError:
                raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if kind is float:
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if kind is list:
            return [part.strip() for part in value.split(",") if part.strip()]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _apply(config: Config, section: str, key: str, value: Any, where: str) -> None:
    sec = getattr(config, section, None)
    if sec is None or not dataclasses.is_dataclass(sec):
        raise ConfigError(f"{where}: unknown section [{section}]")
    if key not in {f.name for f in dataclasses.fields(sec)}:
        raise ConfigError(f"{where}: unknown key {key!r} in [{section}]")
    setattr(sec, key, _coerce(value, getattr(sec, key), where))


def load_config(
    path: str | os.PathLike | None = None,
    *,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Build the effective configuration.

    ``overrides`` maps ``"section.key"`` to a value (used for command-line flags).
    """
    config = Config()
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
        for section, values in data.items():
            if not isinstance(values, dict):
                raise ConfigError(f"{path}: [{section}] must be a table")
            for key, value in values.items():
                _apply(config, section, key, value, f"{path} [{section}] {key}")
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if not name.startswith("MEMOSD_"):
            continue
        rest = name[len("MEMOSD_"):].lower()
        section, _, key = rest.partition("_")
        if section in {f.name for f in dataclasses.fields(Config)} and key:
            _apply(config, section, key, value, f"environment {name}")
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        _apply(config, section, key, value, f"option {dotted}")
    try:
        config.retrieval_config()
    except ValueError as exc:  # its own checks (positive hash_dim, a non-zero channel weight)
        raise ConfigError(f"[retrieval]: {exc}") from None
    return config
