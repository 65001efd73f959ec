/**
 * What the agent and admin clients share: options, the connection, and one
 * request path with typed errors, timeouts and retries.
 */

import { PROTOCOL_VERSION } from "../protocol/codec";
import { errorFromBody, ErrorCode, MemosdError } from "../protocol/errors";
import * as read from "../protocol/defaults";
import type { HelloResult } from "../protocol/types";
import { Connection, type CurveKeys } from "../transport/connection";

/** Options of {@link Client} and {@link AdminClient}. */
export interface ClientOptions {
  /** ZeroMQ endpoint, e.g. `ipc:///run/memosd/memosd.sock` or `tcp://10.0.0.5:7707`. */
  endpoint?: string;
  /** How long one attempt waits for its reply, in ms (default 10,000). */
  timeoutMs?: number;
  /** How many times a request that is safe to resend is retried after a timeout, BUSY or UNAVAILABLE (default 2). */
  retries?: number;
  /** Pause before the first retry in ms, doubled for each further one (default 50). */
  retryBackoffMs?: number;
  /** CURVE keys for a tcp endpoint that requires them. */
  curve?: CurveKeys;
  /** Sent as `client` in `hello`. */
  clientName?: string;
  /**
   * Send the envelope field `deadline` (now + timeoutMs, fresh on each retry) so the daemon drops a
   * request nobody waits for any more. Default true; set false for a daemon that predates the field (it refuses it as MALFORMED).
   */
  sendDeadline?: boolean;
}

/** Per call: whether it may be resent automatically. */
export interface CallPolicy {
  retry: boolean;
}

const RETRYABLE = new Set<number>([ErrorCode.TIMEOUT, ErrorCode.CONNECTION, ErrorCode.BUSY, ErrorCode.UNAVAILABLE]);

export const CLIENT_NAME = "memosd-client-ts/0.1.0";

/** Settings and connection shared by a client and the namespace views made from it. */
export class Core {
  readonly connection: Connection;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryBackoffMs: number;
  readonly clientName: string;

  constructor(options: ClientOptions, defaultEndpoint: () => string) {
    this.connection = new Connection(options.endpoint ?? defaultEndpoint(),
                                     { curve: options.curve, sendDeadline: options.sendDeadline ?? true });
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retries = Math.max(0, options.retries ?? 2);
    this.retryBackoffMs = options.retryBackoffMs ?? 50;
    this.clientName = options.clientName ?? CLIENT_NAME;
  }

  /** Send `op` and return its result map, or throw the reply's typed error. */
  async call(op: string, ns: string | null, args: Record<string, unknown>, policy: CallPolicy): Promise<unknown> {
    const attempts = policy.retry ? this.retries + 1 : 1;
    let last: MemosdError | null = null;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await sleep(this.retryBackoffMs * 2 ** (attempt - 1));
      try {
        const reply = await this.connection.request({ op, ns, args }, this.timeoutMs);
        if (reply.ok) return reply.result ?? {};
        throw errorFromBody(reply.error);
      } catch (err) {
        if (!(err instanceof MemosdError)) throw err;
        last = err;
        if (!RETRYABLE.has(err.code) || this.connection.isClosed) throw err;
      }
    }
    throw last!;
  }

  /** The handshake; remembers the daemon's message limit so oversized frames are refused before sending. */
  async hello(): Promise<HelloResult> {
    const result = read.plain<HelloResult>(
      await this.call("hello", null, { client: this.clientName, protocol: PROTOCOL_VERSION }, { retry: true }));
    this.connection.maxMessageBytes = result.limits?.max_message_bytes ?? null;
    return result;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
