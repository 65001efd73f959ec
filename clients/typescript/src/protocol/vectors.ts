/**
 * Vectors travel as MessagePack `bin`: raw little-endian float32 bytes.
 * DataView keeps the byte order right on any host and copes with unaligned views.
 */

import { ErrorCode, InvalidArgumentError, InternalError } from "./errors";

/** Little-endian float32 bytes of a vector. */
export function vectorToBytes(vector: Float32Array | number[]): Uint8Array {
  const out = new Uint8Array(vector.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < vector.length; i++) {
    const x = vector[i];
    if (typeof x !== "number") {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `vector[${i}] is not a number`);
    }
    view.setFloat32(i * 4, x, true);
  }
  return out;
}

/** A vector from little-endian float32 bytes (a copy: the frame's buffer is not kept). */
export function bytesToVector(bytes: Uint8Array): Float32Array {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength % 4 !== 0) {
    throw new InternalError(ErrorCode.INTERNAL, "a vector in the reply is not float32 bytes");
  }
  const out = new Float32Array(bytes.byteLength / 4);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}
