/**
 * Wire structures of protocol v1, named and spelled as in docs/protocol.md.
 *
 * Field names are the wire names (snake_case) so that protocol.md documents them
 * directly. Results are read leniently: the client fills omitted fields with their
 * documented defaults (see `defaults.ts`) and keeps fields it does not know.
 * Vectors are `Float32Array` here; on the wire they are MessagePack `bin`.
 */

/** Epoch seconds (UTC), possibly fractional. */
export type Seconds = number;

export type Tier = "stm" | "mtm" | "ltm";

/** One memory to store (`MemoryIn`). */
export interface MemoryIn {
  text: string;
  meta?: Record<string, unknown>;
  tags?: string[];
  event_time?: Seconds | null;
  session?: string | null;
  source?: string | null;
  /** Resending a write with the same key returns the first write's id instead of storing again. */
  idempotency_key?: string | null;
}

/** A stored memory version (`Memory`). */
export interface Memory {
  id: number;
  text: string;
  created_at: Seconds;
  valid_from: Seconds;
  lineage: number;
  tier: Tier;
  meta: Record<string, unknown>;
  tags: string[];
  event_time: Seconds | null;
  session: string | null;
  source: string | null;
  valid_to: Seconds | null;
  supersedes: number | null;
  superseded_by: number | null;
  forgotten_at: Seconds | null;
  idempotency_key: string | null;
  [extra: string]: unknown;
}

/** Restrictions applied by recall and list; all given conditions must hold (`Filters`). */
export interface Filters {
  session?: string | null;
  source?: string | null;
  tags?: string[];
  tier?: Tier | null;
  after?: Seconds | null;
  before?: Seconds | null;
}

export interface Limits {
  max_message_bytes: number;
  max_batch: number;
  max_k: number;
  max_text_bytes: number;
}

export interface EncoderInfo {
  name: string;
  version: string;
  dim: number;
}

/** A live node of a cluster and the endpoint clients reach it at. */
export interface ClusterNodeInfo {
  name: string;
  endpoint: string;
  version: string;
}

export interface HelloResult {
  protocol: number;
  server_version: string;
  capabilities: string[];
  limits: Limits;
  encoder: EncoderInfo;
  /** In cluster mode, the cluster's live nodes (any of them routes any request); empty otherwise. */
  nodes: ClusterNodeInfo[];
}

export interface RememberResult {
  ids: number[];
  /** Per item: false when its idempotency key was already stored (the earlier id is returned). */
  created: boolean[];
}

export interface GetResult {
  memories: Memory[];
  missing: number[];
}

export interface ListOptions {
  /** Start at this id (inclusive); pass the previous page's `next_cursor`. */
  cursor?: number | null;
  limit?: number;
  filters?: Filters;
  include_forgotten?: boolean;
  include_superseded?: boolean;
}

export interface ListResult {
  memories: Memory[];
  /** The cursor of the next page, or null after the last page. */
  next_cursor: number | null;
}

export interface RecallOptions {
  k?: number;
  filters?: Filters;
  /** Record time: what the store held then. */
  as_of?: Seconds | null;
  include_forgotten?: boolean;
}

export interface RecallHit {
  memory: Memory;
  score: number;
  rank: number;
  matched: string[];
}

export interface RecallResult {
  hits: RecallHit[];
  took_us: number;
}

export interface EncodeResult {
  dim: number;
  vectors: Float32Array[];
}

export interface UpdateFields {
  text?: string | null;
  meta?: Record<string, unknown> | null;
  tags?: string[] | null;
  event_time?: Seconds | null;
  reason?: string | null;
  idempotency_key?: string | null;
}

export interface UpdateResult {
  id: number;
  supersedes: number;
  created: boolean;
}

export interface ForgetResult {
  changed: number[];
  missing: number[];
}

export interface PurgeResult {
  /** Number of stored versions deleted. */
  purged: number;
  missing: number[];
}

export interface NamespaceStats {
  name: string;
  memories: number;
  current: number;
  superseded: number;
  forgotten: number;
  index_bytes: number;
}

export interface StatsResult {
  namespaces: NamespaceStats[];
  store_bytes: number;
  map_bytes: number;
  slb: Record<string, unknown> | null;
}

export interface ExportOptions {
  cursor?: number | null;
  limit?: number;
}

export type ExportResult = ListResult;

export interface ImportResult {
  imported: number;
  skipped: number;
}

export interface EntityInfo {
  [field: string]: unknown;
}

export interface FactInfo {
  [field: string]: unknown;
}

export interface PageResult {
  id: number;
  session: string | null;
  members: number[];
  first_time: Seconds;
  last_time: Seconds;
  tier: string;
  closed: boolean;
  consolidated: boolean;
  resident: boolean;
  heat: number;
  hits: number;
  touched_at: Seconds;
  prefetched: boolean;
  policy: string;
  summary: string;
  keywords: string[];
  entities: EntityInfo[];
  facts: FactInfo[];
}

export interface EntityResult {
  name: string;
  pages: number[];
  mentions: number[];
  facts: FactInfo[];
  first_time: Seconds | null;
  last_time: Seconds | null;
}

// ---------------------------------------------------------------- admin

export interface StatusResult {
  version: string;
  pid: number;
  uptime_s: number;
  data_dir: string;
  endpoints: string[];
  namespaces: number;
  memories: number;
  requests: number;
  writer_queue: number;
  writer_alive: boolean;
  loop_lag_ms: number;
  map_used_bytes: number;
  map_size_bytes: number;
  writer_heartbeat_age_s: number;
  disk_free_bytes: number;
  rss_bytes: number;
  events_endpoint: string | null;
  metrics_endpoint: string | null;
  mqtt: Record<string, unknown>;
  ops: Record<string, Record<string, number>>;
  plugin_errors: Record<string, unknown>[];
  migration: Record<string, unknown> | null;
  indexes_from: string;
  load_s: number;
  namespaces_opened: number;
  namespaces_replayed: number;
  replayed_entries: number;
  namespaces_rebuilt: number;
  snapshots_written: number;
  snapshot_at: number;
  [extra: string]: unknown;
}

export interface ShutdownResult {
  stopping: boolean;
}

export interface SnapshotResult {
  namespaces: number;
  taken_at: number;
  seconds: number;
}

export interface BackupResult {
  path: string;
  bytes: number;
  sha256: string;
  manifest: Record<string, unknown>;
}

/** A namespace pattern (fnmatch) and the highest right it gives. */
export interface Grant {
  namespace: string;
  rights: "read" | "write" | "admin";
}

export interface KeysCreateResult {
  name: string;
  public_key: string;
  secret_key: string;
  server_public_key: string;
  grants: Grant[];
}

export interface KeysListResult {
  keys: Record<string, unknown>[];
  server_public_key: string | null;
}

export interface KeysRevokeResult {
  revoked: boolean;
}

export interface PluginsResult {
  plugins: Record<string, unknown>[];
  dense: boolean;
  encoder: string;
  backend: string;
  migration: Record<string, unknown> | null;
}

export interface TiersResult {
  namespaces: Record<string, unknown>[];
  budget_bytes: number;
  resident_bytes: number;
  backlog: number;
  policy: string;
  rss_bytes: number;
  slb: Record<string, unknown> | null;
}
