/**
 * Request envelopes and replies as single MessagePack frames.
 */

import { Decoder, Encoder } from "@msgpack/msgpack";

/** The protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;

/** A request (`Envelope`). */
export interface Envelope {
  id: number;
  op: string;
  ns: string | null;
  args: Record<string, unknown>;
  /** Seconds since the Unix epoch (UTC) after which the client no longer waits for the reply; left out when absent. */
  deadline?: number;
}

/** A reply (`Reply`), before its result is typed. */
export interface RawReply {
  v: number;
  id: number;
  ok: boolean;
  result?: unknown;
  error?: unknown;
}

// undefined optional arguments are left out, so the daemon applies its defaults.
const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();

/**
 * Encode an envelope. `v` and `id` come first so that the daemon can still read
 * the id of a frame it refuses as too large and the error reaches its request.
 */
export function encodeEnvelope(env: Envelope): Uint8Array {
  return encoder.encode({ v: PROTOCOL_VERSION, id: env.id, op: env.op, ns: env.ns, deadline: env.deadline,
                          args: env.args });
}

/** Decode a reply frame; null when it is not a reply map (such a frame is ignored). */
export function decodeReply(frame: Uint8Array): RawReply | null {
  let value: unknown;
  try {
    value = decoder.decode(frame);
  } catch {
    return null;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  const r = value as Record<string, unknown>;
  if (typeof r.id !== "number" || typeof r.ok !== "boolean") return null;
  return { v: typeof r.v === "number" ? r.v : 0, id: r.id, ok: r.ok, result: r.result, error: r.error };
}
