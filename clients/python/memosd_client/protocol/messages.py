"""Every message of the memosd wire protocol, defined once.

The daemon, the client library, the CLI and ``docs/protocol.md`` all use these
definitions. A request is one MessagePack frame holding an :class:`Envelope`
whose ``args`` decode into the operation's ``*Args`` struct; a reply is one
frame holding a :class:`Reply` whose ``result`` is the operation's result struct
or whose ``error`` is an :class:`ErrorBody`. Vectors travel as MessagePack
``bin`` (raw little-endian float32 bytes), never as lists of floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

PROTOCOL_VERSION = 1
"""Version of this protocol; sent in every envelope and checked by the daemon."""

Tier = Literal["stm", "mtm", "ltm"]


class Struct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of request structs: unknown field names are rejected so typos surface as errors."""


class ReplyStruct(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of structs the daemon sends: unknown fields are ignored, so a newer daemon may add
    fields without breaking older clients."""


# --------------------------------------------------------------------------- envelope


class Envelope(Struct):
    """Outer request frame. ``args`` is decoded in a second step by the operation's type."""

    v: int
    id: int
    op: str
    ns: str | None = None
    args: msgspec.Raw = msgspec.Raw(b"\x80")
    deadline: float | None = None
    """Seconds since the Unix epoch (UTC) after which the client no longer waits for the reply;
    the daemon drops a request still queued past it unanswered. None: no deadline."""


class ErrorBody(ReplyStruct):
    code: int
    name: str
    message: str
    details: dict[str, Any] = {}


class Reply(ReplyStruct):
    """Outer reply frame: exactly one of ``result`` (when ``ok``) or ``error``."""

    v: int
    id: int
    ok: bool
    result: msgspec.Raw = msgspec.Raw(b"\xc0")
    error: ErrorBody | None = None


# --------------------------------------------------------------------------- shared shapes


class MemoryIn(Struct):
    """One memory to store."""

    text: str
    meta: dict[str, Any] = {}
    tags: list[str] = []
    event_time: float | None = None
    session: str | None = None
    source: str | None = None
    idempotency_key: str | None = None


class Memory(ReplyStruct):
    """A stored memory version as returned by get/list/recall/export."""

    id: int
    text: str
    created_at: float
    valid_from: float
    lineage: int
    tier: str = "stm"
    meta: dict[str, Any] = {}
    tags: list[str] = []
    event_time: float | None = None
    session: str | None = None
    source: str | None = None
    valid_to: float | None = None
    supersedes: int | None = None
    superseded_by: int | None = None
    forgotten_at: float | None = None
    idempotency_key: str | None = None

    @property
    def is_current(self) -> bool:
        """True when this version is neither superseded nor forgotten."""
        return self.valid_to is None and self.forgotten_at is None


class Filters(Struct):
    """Restrictions applied by recall and list. All given conditions must hold."""

    session: str | None = None
    source: str | None = None
    tags: list[str] = []
    tier: Tier | None = None
    after: float | None = None
    before: float | None = None


class EncoderInfo(ReplyStruct):
    name: str
    version: str
    dim: int


class Limits(ReplyStruct):
    max_message_bytes: int
    max_batch: int
    max_k: int
    max_text_bytes: int


# --------------------------------------------------------------------------- operations


class ClusterNodeInfo(ReplyStruct):
    """A live node of a cluster and the endpoint clients reach it at."""

    name: str
    endpoint: str
    version: str


class OwnedNamespace(ReplyStruct):
    """A namespace a cluster node owns, and where it stands in the namespace's log."""

    namespace: str
    log_seq: int
    """The last log sequence of the namespace this node has applied or fenced."""
    lease: int
    """The lease revision this node took the namespace with (its fencing token)."""
    lease_valid_s: float
    """Seconds the lease is certain to stay this node's without a renewal."""
    ready: bool
    pending: int
    """Writes of this namespace waiting for a log append or being applied after one."""
    replayed_entries: int
    """Log entries this node applied from the log (catch-up at take-over) rather than appended itself."""
    appended_entries: int


class LogReplica(ReplyStruct):
    """One JetStream server holding a copy of the cluster's log."""

    name: str
    leader: bool
    current: bool
    """Caught up with the leader (a follower that is not has ``lag`` operations to apply)."""
    lag: int
    active_s: float | None
    """Seconds since the leader last heard from it (None for the leader)."""


class LogStream(ReplyStruct):
    """The cluster's log stream as JetStream reports it."""

    name: str
    messages: int
    bytes: int
    replicas: list[LogReplica]


class ClusterInfo(ReplyStruct):
    """This node's view of the cluster (cluster mode only)."""

    node: str
    endpoint: str
    nodes: list[ClusterNodeInfo]
    owned: list[OwnedNamespace]
    connected: bool
    """Whether the node's connection to NATS is up."""
    takeovers: int = 0
    handed_over: int = 0
    lost: int = 0
    """Namespaces this node lost without handing them over (lease expired, fenced by another node)."""
    moved: int = 0
    """Requests answered MOVED (sent to another node)."""
    unavailable: int = 0
    """Requests answered UNAVAILABLE because ownership was changing or NATS was unreachable."""
    namespaces_per_node: dict[str, int] = {}
    """Lease holders across the cluster, from the lease bucket (a node that died keeps its count until its
    leases are taken over)."""
    log: LogStream | None = None
    """The log stream's size and replicas, as of this node's last upkeep round."""
    refreshed_s: float | None = None
    """Seconds since this view of the cluster was refreshed."""


class HelloArgs(Struct):
    client: str | None = None
    protocol: int = PROTOCOL_VERSION


class HelloResult(ReplyStruct):
    protocol: int
    server_version: str
    capabilities: list[str]
    limits: Limits
    encoder: EncoderInfo
    nodes: list[ClusterNodeInfo] = []
    """In cluster mode, the cluster's live nodes (any of them routes any request); empty otherwise."""


class RememberArgs(Struct):
    items: list[MemoryIn]


class RememberResult(ReplyStruct):
    ids: list[int]
    created: list[bool]
    """False where an idempotency key matched an earlier write (the earlier id is returned)."""


class GetArgs(Struct):
    ids: list[int]


class GetResult(ReplyStruct):
    memories: list[Memory]
    missing: list[int] = []


class ListArgs(Struct):
    cursor: int | None = None
    limit: int = 100
    filters: Filters = msgspec.field(default_factory=Filters)
    include_forgotten: bool = False
    include_superseded: bool = False


class ListResult(ReplyStruct):
    memories: list[Memory]
    next_cursor: int | None = None


class RecallArgs(Struct):
    query: str | None = None
    vector: bytes | None = None
    k: int = 10
    filters: Filters = msgspec.field(default_factory=Filters)
    as_of: float | None = None
    include_forgotten: bool = False


class EncodeArgs(Struct):
    texts: list[str]


class EncodeResult(ReplyStruct):
    """One vector per text: raw little-endian float32 bytes of length ``dim * 4``."""

    dim: int
    vectors: list[bytes]


class RecallHit(ReplyStruct):
    memory: Memory
    score: float
    rank: int
    matched: list[str]
    """Channels that found it: bm25, hash, and dense when an encoder plugin is configured (docs/plugins.md)."""


class RecallResult(ReplyStruct):
    hits: list[RecallHit]
    took_us: int


class UpdateArgs(Struct):
    id: int
    text: str | None = None
    meta: dict[str, Any] | None = None
    tags: list[str] | None = None
    event_time: float | None = None
    reason: str | None = None
    idempotency_key: str | None = None


class UpdateResult(ReplyStruct):
    id: int
    supersedes: int
    created: bool = True


class HistoryArgs(Struct):
    id: int


class HistoryResult(ReplyStruct):
    versions: list[Memory]


class IdsArgs(Struct):
    ids: list[int]


class ForgetResult(ReplyStruct):
    changed: list[int]
    missing: list[int] = []


class PurgeArgs(Struct):
    ids: list[int] = []
    all: bool = False


class PurgeResult(ReplyStruct):
    purged: int
    missing: list[int] = []


class StatsArgs(Struct):
    pass


class NamespaceStats(ReplyStruct):
    name: str
    memories: int
    current: int
    superseded: int
    forgotten: int
    index_bytes: int


class SlbInfo(ReplyStruct):
    """The semantic lookaside buffer's counters since start (docs/slb.md)."""

    enabled: bool
    lookups: int = 0
    hits: int = 0
    hit_rate: float = 0.0
    hit_mean_us: float = 0.0
    """Mean engine time of a recall answered through the buffer."""
    miss_mean_us: float = 0.0
    verified: int = 0
    """Hits also answered by the full search, to measure agreement."""
    agreement: float | None = None
    """Mean share of the full search's top-k that the buffered answer returned (1.0 = identical sets)."""
    entries: int = 0
    invalidations: int = 0
    prefetch: bool = False
    """Whether recalls warm the pages adjacent to their hits (slb.prefetch)."""
    prefetched: int = 0
    prefetch_used: int = 0
    prefetch_wasted: int = 0
    prefetch_usefulness: float | None = None
    """used / (used + wasted): the share of settled prefetches that saved a fault."""


class WriterInfo(ReplyStruct):
    """The writer's counters since start: group commit puts concurrent writes in one transaction."""

    commits: int
    """Write transactions committed (one fsync each, when durable)."""
    jobs: int
    """Write requests (and background store changes) those transactions carried."""
    largest_group: int = 0
    group_sizes: list[tuple[int, int]] = []
    """(smallest group size of a power-of-two bucket, commits): jobs per commit as a histogram."""


class StatsResult(ReplyStruct):
    namespaces: list[NamespaceStats]
    store_bytes: int
    map_bytes: int
    slb: SlbInfo | None = None
    writer: WriterInfo | None = None


class ExportArgs(Struct):
    cursor: int | None = None
    limit: int = 500


class ExportResult(ReplyStruct):
    memories: list[Memory]
    next_cursor: int | None = None


class ImportArgs(Struct):
    memories: list[Memory]


class ImportResult(ReplyStruct):
    imported: int
    skipped: int


class StatusArgs(Struct):
    pass


class PluginInfo(ReplyStruct):
    """One discovered (or configured) plugin."""

    name: str
    group: str
    """Entry-point group: memosd.encoders, memosd.backends or memosd.policies."""
    status: Literal["loaded", "failed", "disabled"]
    """loaded: in use; failed: bypassed after an error; disabled: installed but not selected in the config."""
    version: str = ""
    error: str | None = None
    """Why it failed (at load or at run time)."""
    target: str = ""
    """The entry point's object reference (module:attribute)."""


class MigrationInfo(ReplyStruct):
    """Progress of embedding stored memories with the configured encoder."""

    encoder: str
    """name/version/dim of the configured encoder."""
    state: Literal["idle", "running", "done", "stopped"]
    """running: some namespaces are being (re-)embedded, their dense channel off until done;
    stopped: the encoder failed, nothing more is embedded."""
    namespaces_pending: int = 0
    vectors_done: int = 0
    vectors_total: int = 0
    queued: int = 0
    """New memories waiting for their vector (the dense channel's lag behind lexical recall)."""
    vectors_opened: int = 0
    """At start: vectors found in backends saved at the last clean stop, not added again."""
    vectors_loaded: int = 0
    """At start: vectors added to backends (namespaces built from the store, or what a saved one lacked)."""


class PluginsArgs(Struct):
    pass


class PluginsResult(ReplyStruct):
    plugins: list[PluginInfo]
    dense: bool
    """True when recall fuses a dense channel (a configured encoder loaded and healthy)."""
    encoder: str = ""
    """name/version/dim of the dense encoder in use; empty when none."""
    backend: str = ""
    migration: MigrationInfo | None = None


class TiersArgs(Struct):
    namespace: str | None = None
    """One namespace; all when omitted."""


class NamespaceTiers(ReplyStruct):
    """One namespace's tiers: where its memories live and what the scheduler did with them."""

    name: str
    stm: int
    """Turns in short-term rings (always resident, always searched)."""
    mtm: int
    """Turns in mid-term pages."""
    ltm: int
    """Turns in consolidated pages that went cold (long-term)."""
    pages: int
    open_pages: int
    consolidated_pages: int
    facts: int
    resident_pages: int
    """Pages whose vectors are in RAM."""
    resident_bytes: int
    """RAM of the resident page vectors (what the budget limits)."""
    fixed_bytes: int
    """RAM that eviction cannot free: coarse and knowledge indexes, document frequencies, rings and page
    records (the lexical index is counted in stats' index_bytes)."""
    heat_p50: float = 0.0
    heat_p90: float = 0.0
    heat_p99: float = 0.0
    faults: int = 0
    """Pages faulted back in since start."""
    fault_queries: int = 0
    """Recalls that faulted at least one page in."""
    queries: int = 0
    evictions: int = 0
    prefetched: int = 0
    """Pages made resident by prefetching since start (not counted as faults)."""
    prefetch_used: int = 0
    """Prefetched pages a later recall needed while they were still resident (a fault avoided each)."""
    prefetch_wasted: int = 0
    """Prefetched pages evicted before any recall needed them."""
    promotions: int = 0
    demotions: int = 0
    pages_formed: int = 0
    consolidated: int = 0
    """Pages consolidated since start."""
    policy_failures: int = 0
    """Consolidations where the configured policy failed and the built-in one was used."""
    policy_usage: dict[str, int] = {}
    """Resource accounting reported by the policy, summed (e.g. prompt_tokens, completion_tokens)."""


class SchedulerInfo(ReplyStruct):
    """How the tier scheduler shared the event loop since start: its work comes in steps bounded in time."""

    step_s: float
    """The configured longest step (``tiers.step_ms``)."""
    steps: int
    """Stretches of scheduler work on the event loop: steps, and the RAM updates of its writer jobs."""
    longest_step_s: float
    """The longest of them."""
    busy_s: float
    """Their total time."""
    step_histogram: list[tuple[float | None, int]] = []
    """(upper bound in seconds, steps) per bucket; the last bucket, bound None, holds the longer ones."""


class TiersResult(ReplyStruct):
    namespaces: list[NamespaceTiers]
    budget_bytes: int
    """The configured residency budget (0 = unlimited)."""
    resident_bytes: int
    """Page vectors resident over all namespaces."""
    backlog: int
    """Short-term turns waiting to be paged plus closed pages waiting to be consolidated."""
    policy: str
    """The consolidation policy in use (name/version)."""
    rss_bytes: int = 0
    slb: SlbInfo | None = None
    scheduler: SchedulerInfo | None = None


class PageArgs(Struct):
    """Exactly one of ``page`` (a page id) or ``memory`` (the id of a memory: its page)."""

    page: int | None = None
    memory: int | None = None


class FactInfo(ReplyStruct):
    text: str
    sources: list[int]
    """Ids of the turns the fact came from."""
    event_time: float | None = None
    meta: dict[str, Any] = {}


class EntityInfo(ReplyStruct):
    name: str
    sources: list[int]


class PageResult(ReplyStruct):
    """One page: its turns, heat, residency and long-term knowledge."""

    id: int
    session: str | None
    members: list[int]
    first_time: float
    last_time: float
    tier: str
    closed: bool
    consolidated: bool
    resident: bool
    heat: float
    hits: float
    touched_at: float
    prefetched: bool = False
    """Made resident by prefetching and not needed by any recall since."""
    policy: str = ""
    summary: str = ""
    keywords: list[str] = []
    entities: list[EntityInfo] = []
    facts: list[FactInfo] = []


class EntityArgs(Struct):
    name: str
    """An entity as consolidation named it (a person, place, thing); matched case-insensitively."""
    limit: int = 20
    """Most recent pages to report."""


class EntityResult(ReplyStruct):
    """An entity's profile in long-term memory: where it is named, and the facts about it."""

    name: str
    pages: list[int]
    """Consolidated pages that name it, oldest first (at most ``limit``, the most recent)."""
    mentions: list[int]
    """Ids of the turns that name it (provenance)."""
    facts: list[FactInfo]
    """Facts of those pages stated by a turn that names it, or naming it."""
    first_time: float | None = None
    last_time: float | None = None
    """Time span of those pages (event time, else write time)."""


class OpStats(ReplyStruct):
    """Per-operation counters since start, and latency over the most recent requests."""

    count: int
    errors: int
    p50_ms: float
    p99_ms: float


class StatusResult(ReplyStruct):
    version: str
    pid: int
    uptime_s: float
    data_dir: str
    endpoints: list[str]
    namespaces: int
    memories: int
    requests: int
    writer_queue: int
    writer_alive: bool
    loop_lag_ms: float
    map_used_bytes: int
    map_size_bytes: int
    writer_heartbeat_age_s: float = 0.0
    disk_free_bytes: int = 0
    rss_bytes: int = 0
    events_endpoint: str | None = None
    metrics_endpoint: str | None = None
    mqtt: dict[str, Any] = {}
    """MQTT bridge state (connected, queued, published, dropped, reconnects, ...); empty when MQTT is off."""
    ops: dict[str, OpStats] = {}
    plugin_errors: list[PluginInfo] = []
    """Plugins that failed to load or failed at run time (bypassed; the daemon serves with its defaults)."""
    migration: MigrationInfo | None = None
    """Re-embedding progress after an encoder change; None when no dense encoder is configured."""
    indexes_from: str = ""
    """Where this start got its indexes: "snapshot" (of the last clean stop or the last one taken while
    serving, brought forward by the change log where needed), "store" (rebuilt) or "snapshot+store"
    (some namespaces rebuilt)."""
    load_s: float = 0.0
    """Seconds this start took to open or rebuild the indexes."""
    namespaces_opened: int = 0
    """Namespaces this start opened from the index snapshot as they were (not written since)."""
    namespaces_replayed: int = 0
    """Namespaces written since the snapshot that this start brought forward from the change log."""
    replayed_entries: int = 0
    """Change-log entries (one per commit and namespace) those replays read."""
    namespaces_rebuilt: int = 0
    """Namespaces this start rebuilt from the store (no usable snapshot or change log)."""
    snapshots_written: int = 0
    """Index snapshots written while serving since this start (``store.checkpoint_interval_s``)."""
    snapshot_at: float = 0.0
    """Unix time of the state the last of them holds; 0: none yet."""
    cluster: ClusterInfo | None = None
    """Cluster mode: this node, the live nodes, and the namespaces it owns; None on a single node."""


class Grant(Struct, frozen=True):
    """A right on the namespaces matching ``namespace`` (an fnmatch pattern, ``*`` for all)."""

    namespace: str
    rights: Literal["read", "write", "admin"]


class KeyInfo(ReplyStruct):
    name: str
    public_key: str
    grants: list[Grant]
    created_at: float
    revoked_at: float | None = None


class KeysCreateArgs(Struct):
    name: str
    grants: list[Grant]


class KeysCreateResult(ReplyStruct):
    """The client's key pair: ``secret_key`` is shown once and not stored by the daemon."""

    name: str
    public_key: str
    secret_key: str
    server_public_key: str
    grants: list[Grant]


class KeysListArgs(Struct):
    pass


class KeysListResult(ReplyStruct):
    keys: list[KeyInfo]
    server_public_key: str | None = None


class KeysRevokeArgs(Struct):
    name: str


class KeysRevokeResult(ReplyStruct):
    revoked: bool


class ShutdownArgs(Struct):
    pass


class ShutdownResult(ReplyStruct):
    stopping: bool


class SnapshotArgs(Struct):
    pass


class SnapshotResult(ReplyStruct):
    """An index snapshot written now (docs/indexes.md): the next start opens these namespaces as they
    are, and brings forward only what is written after ``taken_at``."""

    namespaces: int
    taken_at: float
    """Unix time of the state it holds."""
    seconds: float
    """How long it took to write."""


class BackupArgs(Struct):
    dest: str
    """Absolute path of a new (or empty) directory on the daemon's host."""


class BackupResult(ReplyStruct):
    """A finished backup: the directory ``path`` holds ``data.mdb`` and ``manifest.json`` (also returned here)."""

    path: str
    bytes: int
    sha256: str
    manifest: dict[str, Any]


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True, slots=True)
class Operation:
    """One protocol operation: its name, argument and result types and its help text."""

    name: str
    args: type[Struct]
    result: type[ReplyStruct]
    summary: str
    needs_namespace: bool = True
    writes: bool = False
    admin: bool = False
    retry_safe: bool = True
    """Safe for the client to resend after a timeout (reads, or writes made idempotent by keys)."""


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("hello", HelloArgs, HelloResult, "Handshake: protocol version, capabilities, limits.",
                  needs_namespace=False),
        Operation("remember", RememberArgs, RememberResult,
                  "Store one or more memories; the reply means they are on disk.", writes=True),
        Operation("get", GetArgs, GetResult, "Fetch memories by id (any version, forgotten included)."),
        Operation("list", ListArgs, ListResult, "Page through memories in id order with filters."),
        Operation("recall", RecallArgs, RecallResult,
                  "Ranked memories for a query text or vector (current versions unless as_of)."),
        Operation("encode", EncodeArgs, EncodeResult,
                  "Vectors of texts in the encoder's space (for recall by vector).", needs_namespace=False),
        Operation("update", UpdateArgs, UpdateResult,
                  "Supersede a memory with a new version; the old one keeps its history.", writes=True),
        Operation("history", HistoryArgs, HistoryResult, "Every version of a memory, oldest first."),
        Operation("forget", IdsArgs, ForgetResult,
                  "Soft delete: excluded from recall and list, reversible with unforget.", writes=True),
        Operation("unforget", IdsArgs, ForgetResult, "Undo forget.", writes=True),
        Operation("purge", PurgeArgs, PurgeResult,
                  "Hard delete memories (every version) or the whole namespace; irreversible.",
                  writes=True, retry_safe=True),
        Operation("stats", StatsArgs, StatsResult,
                  "Counts and sizes of one namespace, or of all when no namespace is given.",
                  needs_namespace=False),
        Operation("export", ExportArgs, ExportResult, "Page through every stored version for export."),
        Operation("import", ImportArgs, ImportResult,
                  "Store exported versions keeping their ids; existing ids are skipped.", writes=True),
        Operation("status", StatusArgs, StatusResult, "Daemon status (admin channel).",
                  needs_namespace=False, admin=True),
        Operation("shutdown", ShutdownArgs, ShutdownResult, "Stop the daemon cleanly (admin channel).",
                  needs_namespace=False, admin=True, retry_safe=False),
        Operation("backup", BackupArgs, BackupResult,
                  "Write a consistent, compacted copy of the store and its manifest into a new directory "
                  "while the daemon keeps serving (admin channel).",
                  needs_namespace=False, admin=True, retry_safe=False),
        Operation("snapshot", SnapshotArgs, SnapshotResult,
                  "Write the index snapshot now, while serving, so that the next start has little to bring "
                  "forward (admin channel).", needs_namespace=False, admin=True, retry_safe=False),
        Operation("keys_create", KeysCreateArgs, KeysCreateResult,
                  "Create a CURVE client key with namespace grants (admin).",
                  needs_namespace=False, admin=True, retry_safe=False),
        Operation("plugins", PluginsArgs, PluginsResult,
                  "Installed plugins with their status and errors, and re-embedding progress (admin channel).",
                  needs_namespace=False, admin=True),
        Operation("tiers", TiersArgs, TiersResult,
                  "Per namespace: turns per tier, pages, resident bytes, heat percentiles, faults, evictions, "
                  "promotions (admin channel).", needs_namespace=False, admin=True),
        Operation("page", PageArgs, PageResult,
                  "One page of a namespace: members, heat, residency, summary, facts and entities."),
        Operation("entity", EntityArgs, EntityResult,
                  "An entity's profile in long-term memory: pages and turns that name it, facts about it."),
        Operation("keys_list", KeysListArgs, KeysListResult, "List client keys and the server's public key (admin).",
                  needs_namespace=False, admin=True),
        Operation("keys_revoke", KeysRevokeArgs, KeysRevokeResult,
                  "Revoke a client key; its connections are refused from the next request (admin).",
                  needs_namespace=False, admin=True),
    )
}


# --------------------------------------------------------------------------- events

EVENT_KINDS = ("remembered", "updated", "forgotten", "unforgotten", "purged", "namespace_purged", "imported")
"""Kinds of :class:`Event` published on the ZeroMQ PUB socket and over MQTT."""


class Event(ReplyStruct):
    """A change in the store, published after it is committed.

    ZeroMQ PUB: two frames, the topic ``<namespace>/<kind>`` and this struct in
    MessagePack. MQTT: topic ``<prefix>/events/<namespace>/<kind>``, payload
    this struct in JSON. Events carry ids, not texts: fetch with ``get``.
    """

    kind: str
    namespace: str
    ids: list[int]
    at: float
    seq: int
    """Increases by one per event within a daemon run (gaps mean dropped events)."""
    details: dict[str, Any] = {}
