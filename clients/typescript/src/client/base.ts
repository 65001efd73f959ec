/**
 * What the agent and admin clients share: options, the connections, and one
 * request path with typed errors, timeouts, retries and cluster redirects.
 */

import { PROTOCOL_VERSION } from "../protocol/codec";
import { errorFromBody, ErrorCode, MemosdError } from "../protocol/errors";
import * as read from "../protocol/defaults";
import type { HelloResult } from "../protocol/types";
import type { CurveKeys } from "../transport/connection";
import { Pool } from "../transport/pool";

/** Options of {@link Client} and {@link AdminClient}. */
export interface ClientOptions {
  /** ZeroMQ endpoint, e.g. `ipc:///run/memosd/memosd.sock` or `tcp://10.0.0.5:7707`. */
  endpoint?: string;
  /** How long one attempt waits for its reply, in ms (default 10,000). */
  timeoutMs?: number;
  /**
   * How many times a request that is safe to resend is retried after a timeout, BUSY or UNAVAILABLE (default 2).
   * In a cluster, UNAVAILABLE with `retry_after_s` is instead resent after that pause until `timeoutMs` × (retries + 1)
   * have passed since the call began.
   */
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

/** MOVED replies followed for one call (ownership moving again and again means something is wrong). */
export const MAX_HOPS = 5;

export const CLIENT_NAME = "memosd-client-ts/0.1.0";

/** Settings and connections shared by a client and the namespace views made from it. */
export class Core {
  readonly pool: Pool;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryBackoffMs: number;
  readonly clientName: string;

  constructor(options: ClientOptions, defaultEndpoint: () => string) {
    this.pool = new Pool(options.endpoint ?? defaultEndpoint(),
                         { curve: options.curve, sendDeadline: options.sendDeadline ?? true });
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retries = Math.max(0, options.retries ?? 2);
    this.retryBackoffMs = options.retryBackoffMs ?? 50;
    this.clientName = options.clientName ?? CLIENT_NAME;
  }

  /** The endpoint the client was made with. */
  get endpoint(): string {
    return this.pool.home.endpoint;
  }

  /** Close every connection. */
  close(): void {
    this.pool.close();
  }

  /**
   * Send `op` and return its result map, or throw the reply's typed error.
   *
   * In a cluster, a MOVED reply is followed to the node it names (at most {@link MAX_HOPS} times) and
   * remembered as the namespace's route; a route whose node does not answer is forgotten and the call
   * goes to the home endpoint again. MOVED means the request was not executed, so every call follows it.
   * UNAVAILABLE with `retry_after_s` (ownership changing) is waited out and resent while the call's
   * overall timeout — `timeoutMs` × (`retries` + 1) from the start — has not passed; like every other
   * resend, only for calls that are safe to resend (a write the log did not acknowledge may be stored).
   */
  async call(op: string, ns: string | null, args: Record<string, unknown>, policy: CallPolicy): Promise<unknown> {
    const giveUpAt = Date.now() + this.timeoutMs * (this.retries + 1);
    let retriesLeft = policy.retry ? this.retries : 0;
    let hops = 0;
    let endpoint = this.pool.endpointFor(ns);
    for (;;) {
      let err: MemosdError;
      try {
        const reply = await this.pool.connection(endpoint).request({ op, ns, args }, this.timeoutMs);
        if (reply.ok) return reply.result ?? {};
        err = errorFromBody(reply.error);
      } catch (e) {
        if (!(e instanceof MemosdError)) throw e;
        err = e;
      }
      if (this.pool.isClosed) throw err;

      const movedTo = err.code === ErrorCode.MOVED ? err.details.endpoint : undefined;
      if (typeof movedTo === "string" && movedTo !== "" && hops < MAX_HOPS) {
        hops++;
        this.pool.route(ns, movedTo);
        endpoint = movedTo;
        continue;
      }
      if (endpoint !== this.endpoint && (err.code === ErrorCode.TIMEOUT || err.code === ErrorCode.CONNECTION)) {
        // The owner we were sent to is gone: the home node knows (or decides) who owns the namespace now.
        this.pool.forget(ns, endpoint);
        endpoint = this.endpoint;
        if (policy.retry) continue;
        throw err;
      }
      const retryAfterS = err.code === ErrorCode.UNAVAILABLE ? err.details.retry_after_s : undefined;
      if (typeof retryAfterS === "number" && policy.retry) {
        if (Date.now() + retryAfterS * 1000 >= giveUpAt) throw err;
        await sleep(retryAfterS * 1000);
        continue;
      }
      if (!RETRYABLE.has(err.code) || retriesLeft === 0) throw err;
      await sleep(this.retryBackoffMs * 2 ** (this.retries - retriesLeft));
      retriesLeft--;
    }
  }

  /** The handshake; remembers the daemon's message limit so oversized frames are refused before sending. */
  async hello(): Promise<HelloResult> {
    const result = read.helloResult(
      await this.call("hello", null, { client: this.clientName, protocol: PROTOCOL_VERSION }, { retry: true }));
    this.pool.setMaxMessageBytes(result.limits?.max_message_bytes ?? null);
    return result;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
