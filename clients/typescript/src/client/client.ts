/**
 * The agent client: every data operation of the agent socket, as async methods.
 */

import { randomUUID } from "node:crypto";

import * as read from "../protocol/defaults";
import { ErrorCode, InvalidArgumentError, NotFoundError } from "../protocol/errors";
import type {
  EncodeResult, EntityResult, ExportOptions, ExportResult, ForgetResult, GetResult, HelloResult, ImportResult,
  ListOptions, ListResult, Memory, MemoryIn, PageResult, PurgeResult, RecallOptions, RecallResult, RememberResult,
  StatsResult, UpdateFields, UpdateResult,
} from "../protocol/types";
import { bytesToVector, vectorToBytes } from "../protocol/vectors";
import { defaultEndpoint } from "../transport/endpoints";
import { Core, type ClientOptions } from "./base";

export interface AgentClientOptions extends ClientOptions {
  /** The namespace every data operation works in. */
  namespace?: string;
  /**
   * Give every write without an idempotency key a random one, so that retries never store twice (default true).
   * A write that still has no key (false, and none given) is sent once and never resent.
   */
  autoIdempotency?: boolean;
}

const SAFE = { retry: true };
const NEVER_RETRIED = { retry: false };

/**
 * A client for the agent socket. Many calls may be in flight at once; replies are
 * matched by request id. Call {@link close} when done (an open socket keeps Node running).
 */
export class Client {
  private readonly core: Core;
  /** The namespace of this client's data operations (null: none; data operations then fail with INVALID_NAMESPACE). */
  readonly namespace: string | null;
  private readonly autoIdempotency: boolean;

  constructor(options: AgentClientOptions = {}, core?: Core) {
    this.core = core ?? new Core(options, defaultEndpoint);
    this.namespace = options.namespace ?? null;
    this.autoIdempotency = options.autoIdempotency ?? true;
  }

  /** The endpoint this client was made with (in a cluster, requests may be redirected to other nodes). */
  get endpoint(): string {
    return this.core.endpoint;
  }

  /** A client for another namespace sharing this one's connections, routes and settings (closing either closes both). */
  withNamespace(namespace: string): Client {
    return new Client({ namespace, autoIdempotency: this.autoIdempotency }, this.core);
  }

  /** Close every connection (the ones redirects opened included); calls in flight fail with a ConnectionFailedError. */
  close(): void {
    this.core.close();
  }

  /** Handshake: protocol version, daemon version, capabilities, limits and encoder. */
  hello(): Promise<HelloResult> {
    return this.core.hello();
  }

  /** Store one memory durably; returns its id (the earlier id when its idempotency key was already stored). */
  async remember(text: string, fields: Omit<MemoryIn, "text"> = {}): Promise<number> {
    return (await this.rememberMany([{ ...fields, text }])).ids[0];
  }

  /** Store several memories in one durable commit. */
  async rememberMany(items: Array<string | MemoryIn>): Promise<RememberResult> {
    if (!Array.isArray(items)) throw invalid("items must be an array");
    const wire = items.map((item) => {
      const m: MemoryIn = typeof item === "string" ? { text: item } : { ...item };
      if (m.idempotency_key == null && this.autoIdempotency) m.idempotency_key = randomUUID();
      return m;
    });
    // Without a key on every item a resend could store twice: such a write is sent once.
    const policy = wire.every((m) => m.idempotency_key != null) ? SAFE : NEVER_RETRIED;
    return read.plain<RememberResult>(await this.data("remember", { items: wire }, policy));
  }

  /** One memory by id (any version, forgotten included); NotFoundError when this namespace has none. */
  async get(id: number): Promise<Memory> {
    const res = await this.getMany([id]);
    if (res.memories.length === 0) {
      throw new NotFoundError(ErrorCode.NOT_FOUND, `no memory ${id} in namespace ${JSON.stringify(this.namespace)}`,
                              { id });
    }
    return res.memories[0];
  }

  /** Memories by id; ids this namespace does not hold are listed in `missing`. */
  async getMany(ids: number[]): Promise<GetResult> {
    return read.getResult(await this.data("get", { ids }, SAFE));
  }

  /** One page of memories in id order; pass `next_cursor` back as `cursor` for the next. */
  async list(options: ListOptions = {}): Promise<ListResult> {
    return read.listResult(await this.data("list", { ...options }, SAFE));
  }

  /** Every memory matching the options, page by page. */
  async *listAll(options: Omit<ListOptions, "cursor"> = {}): AsyncGenerator<Memory> {
    let cursor: number | null = null;
    do {
      const page: ListResult = await this.list({ ...options, cursor });
      yield* page.memories;
      cursor = page.next_cursor;
    } while (cursor !== null);
  }

  /** Ranked memories for a query text, or for a vector in the encoder's space. */
  async recall(query: string | Float32Array, options: RecallOptions = {}): Promise<RecallResult> {
    const args: Record<string, unknown> = { ...options };
    if (typeof query === "string") args.query = query;
    else if (query instanceof Float32Array) args.vector = vectorToBytes(query);
    else throw invalid("query must be a string or a Float32Array");
    return read.recallResult(await this.data("recall", args, SAFE));
  }

  /** Vectors of texts in the encoder's space. */
  async encode(texts: string[]): Promise<EncodeResult> {
    const res = read.plain<{ dim: number; vectors: Uint8Array[] }>(
      await this.core.call("encode", this.namespace, { texts }, SAFE));
    return { ...res, vectors: (res.vectors ?? []).map(bytesToVector) };
  }

  /** Supersede a memory with a new version (new id, same lineage); a text alone replaces the text. */
  async update(id: number, change: string | UpdateFields): Promise<UpdateResult> {
    const fields: UpdateFields = typeof change === "string" ? { text: change } : { ...change };
    if (fields.idempotency_key == null && this.autoIdempotency) fields.idempotency_key = randomUUID();
    const policy = fields.idempotency_key != null ? SAFE : NEVER_RETRIED;
    return read.updateResult(await this.data("update", { id, ...fields }, policy));
  }

  /** Every version of a memory's lineage, oldest first. */
  async history(id: number): Promise<Memory[]> {
    return read.historyVersions(await this.data("history", { id }, SAFE));
  }

  /** Soft delete: excluded from recall and list, still returned by get. */
  async forget(ids: number | number[]): Promise<ForgetResult> {
    return read.forgetResult(await this.data("forget", { ids: asIds(ids) }, SAFE));
  }

  /** Undo forget. */
  async unforget(ids: number | number[]): Promise<ForgetResult> {
    return read.forgetResult(await this.data("unforget", { ids: asIds(ids) }, SAFE));
  }

  /** Hard delete every version of these memories' lineages; irreversible. */
  async purge(ids: number | number[]): Promise<PurgeResult> {
    return read.purgeResult(await this.data("purge", { ids: asIds(ids) }, SAFE));
  }

  /** Delete this whole namespace; irreversible, and never resent automatically. */
  async purgeNamespace(): Promise<PurgeResult> {
    return read.purgeResult(await this.data("purge", { all: true }, NEVER_RETRIED));
  }

  /** Counts and sizes of this namespace (`all`: of every namespace). */
  async stats(options: { all?: boolean } = {}): Promise<StatsResult> {
    const ns = options.all ? null : this.namespace;
    return read.statsResult(await this.core.call("stats", ns, {}, SAFE));
  }

  /** One page of every stored version (superseded and forgotten included), for export. */
  async export(options: ExportOptions = {}): Promise<ExportResult> {
    return read.listResult(await this.data("export", { ...options }, SAFE));
  }

  /** Every stored version, page by page. */
  async *exportAll(options: { limit?: number } = {}): AsyncGenerator<Memory> {
    let cursor: number | null = null;
    do {
      const page: ExportResult = await this.export({ ...options, cursor });
      yield* page.memories;
      cursor = page.next_cursor;
    } while (cursor !== null);
  }

  /** Store exported versions keeping their ids; ids already stored are skipped. */
  async import(memories: Memory[]): Promise<ImportResult> {
    return read.plain<ImportResult>(await this.data("import", { memories }, SAFE));
  }

  /** One page of this namespace, by page id or by a member memory's id. */
  async page(which: { page?: number; memory?: number }): Promise<PageResult> {
    return read.pageResult(await this.data("page", { ...which }, SAFE));
  }

  /** An entity's profile in long-term memory. */
  async entity(name: string, options: { limit?: number } = {}): Promise<EntityResult> {
    return read.entityResult(await this.data("entity", { name, ...options }, SAFE));
  }

  private data(op: string, args: Record<string, unknown>, policy: { retry: boolean }): Promise<unknown> {
    return this.core.call(op, this.namespace, args, policy);
  }
}

function invalid(message: string): InvalidArgumentError {
  return new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, message);
}

function asIds(ids: number | number[]): number[] {
  return Array.isArray(ids) ? ids : [ids];
}
