/**
 * Lenient reading of results: the daemon omits fields that hold their default
 * value, so every documented default is filled in here, and unknown fields are kept.
 */

import { InternalError, ErrorCode } from "./errors";
import type {
  EntityResult, ForgetResult, GetResult, HelloResult, ListResult, Memory, PageResult, PluginsResult, PurgeResult,
  RecallHit, RecallResult, StatsResult, StatusResult, TiersResult, UpdateResult,
} from "./types";

type Defaults = Record<string, () => unknown>;

const nil = () => null;
const emptyList = () => [];
const emptyMap = () => ({});

/** Copy `value` (a map) with every absent field that has a default filled in. */
export function withDefaults<T>(value: unknown, defaults: Defaults, what: string): T {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new InternalError(ErrorCode.INTERNAL, `reply field ${what} is not a map`);
  }
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [field, make] of Object.entries(defaults)) {
    if (out[field] === undefined) out[field] = make();
  }
  return out as T;
}

const MEMORY: Defaults = {
  tier: () => "stm", meta: emptyMap, tags: emptyList, event_time: nil, session: nil, source: nil,
  valid_to: nil, supersedes: nil, superseded_by: nil, forgotten_at: nil, idempotency_key: nil,
};

export const memory = (v: unknown): Memory => withDefaults<Memory>(v, MEMORY, "Memory");

function memories(v: unknown): Memory[] {
  return Array.isArray(v) ? v.map(memory) : [];
}

export function getResult(v: unknown): GetResult {
  const r = withDefaults<GetResult>(v, { missing: emptyList }, "GetResult");
  return { ...r, memories: memories(r.memories) };
}

export function listResult(v: unknown): ListResult {
  const r = withDefaults<ListResult>(v, { next_cursor: nil }, "ListResult");
  return { ...r, memories: memories(r.memories) };
}

export function recallResult(v: unknown): RecallResult {
  const r = withDefaults<RecallResult>(v, {}, "RecallResult");
  const hits = Array.isArray(r.hits) ? r.hits : [];
  return {
    ...r,
    hits: hits.map((h) => {
      const hit = withDefaults<RecallHit>(h, { matched: emptyList }, "RecallHit");
      return { ...hit, memory: memory(hit.memory) };
    }),
  };
}

export function historyVersions(v: unknown): Memory[] {
  const r = withDefaults<{ versions: unknown }>(v, {}, "HistoryResult");
  return memories(r.versions);
}

export const helloResult = (v: unknown) => withDefaults<HelloResult>(v, { nodes: emptyList }, "HelloResult");
export const updateResult = (v: unknown) => withDefaults<UpdateResult>(v, { created: () => true }, "UpdateResult");
export const forgetResult = (v: unknown) => withDefaults<ForgetResult>(v, { missing: emptyList }, "ForgetResult");
export const purgeResult = (v: unknown) => withDefaults<PurgeResult>(v, { missing: emptyList }, "PurgeResult");
export const statsResult = (v: unknown) => withDefaults<StatsResult>(v, { slb: nil }, "StatsResult");

export const pageResult = (v: unknown) => withDefaults<PageResult>(v, {
  prefetched: () => false, policy: () => "", summary: () => "", keywords: emptyList, entities: emptyList,
  facts: emptyList,
}, "PageResult");

export const entityResult = (v: unknown) => withDefaults<EntityResult>(v, {
  first_time: nil, last_time: nil,
}, "EntityResult");

export const statusResult = (v: unknown) => withDefaults<StatusResult>(v, {
  writer_heartbeat_age_s: () => 0, disk_free_bytes: () => 0, rss_bytes: () => 0, events_endpoint: nil,
  metrics_endpoint: nil, mqtt: emptyMap, ops: emptyMap, plugin_errors: emptyList, migration: nil,
}, "StatusResult");

export const pluginsResult = (v: unknown) => withDefaults<PluginsResult>(v, {
  encoder: () => "", backend: () => "", migration: nil,
}, "PluginsResult");

export const tiersResult = (v: unknown) => withDefaults<TiersResult>(v, {
  rss_bytes: () => 0, slb: nil,
}, "TiersResult");

/** Any other result: a map, as sent. */
export const plain = <T>(v: unknown): T => withDefaults<T>(v, {}, "result");
