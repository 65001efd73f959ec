/**
 * The stable error codes of protocol v1 and one exception class per code.
 *
 * A daemon error reply (`{code, name, message, details}`) becomes an instance of
 * the class for its code; codes 15 and 16 are raised by the client itself.
 */

/** Error codes; a code never changes meaning, new ones are only added. */
export enum ErrorCode {
  MALFORMED = 1,
  UNSUPPORTED_VERSION = 2,
  UNKNOWN_OP = 3,
  INVALID_ARGUMENT = 4,
  INVALID_NAMESPACE = 5,
  TOO_LARGE = 6,
  NOT_FOUND = 7,
  CONFLICT = 8,
  UNAVAILABLE = 9,
  STORAGE_FULL = 10,
  UNAUTHORIZED = 11,
  FORBIDDEN = 12,
  BUSY = 13,
  INTERNAL = 14,
  TIMEOUT = 15,
  CONNECTION = 16,
  /** Cluster mode: another node owns the namespace; `details.endpoint` is where to send it (`details.node`: its name). */
  MOVED = 17,
}

/** The `error` map of a reply. */
export interface ErrorBody {
  code: number;
  name: string;
  message: string;
  details?: Record<string, unknown>;
}

/** Base class of every error this client throws; `code` is the stable protocol code. */
export class MemosdError extends Error {
  /** The protocol error code (an {@link ErrorCode}, or a newer code this client does not know). */
  readonly code: number;
  /** The code's name as sent by the daemon (e.g. `NOT_FOUND`). */
  readonly codeName: string;
  /** Structured details (e.g. `current` for a conflict, `limit` for too large). */
  readonly details: Record<string, unknown>;

  constructor(code: number, message: string, details: Record<string, unknown> = {}, codeName?: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.codeName = codeName ?? ErrorCode[code] ?? `CODE_${code}`;
    this.details = details;
  }
}

export class MalformedError extends MemosdError {}
export class UnsupportedVersionError extends MemosdError {}
export class UnknownOpError extends MemosdError {}
export class InvalidArgumentError extends MemosdError {}
export class InvalidNamespaceError extends MemosdError {}
export class TooLargeError extends MemosdError {}
export class NotFoundError extends MemosdError {}
export class ConflictError extends MemosdError {}
export class UnavailableError extends MemosdError {}
export class StorageFullError extends MemosdError {}
export class UnauthorizedError extends MemosdError {}
export class ForbiddenError extends MemosdError {}
export class BusyError extends MemosdError {}
export class InternalError extends MemosdError {}
/** No reply within the timeout (client side only). */
export class RequestTimeoutError extends MemosdError {}
/** The daemon could not be reached, e.g. its ipc socket file is missing (client side only). */
export class ConnectionFailedError extends MemosdError {}
/** Cluster mode: the namespace is served by another node (`details.endpoint`); the client follows it by itself. */
export class MovedError extends MemosdError {}

type ErrorClass = new (code: number, message: string, details?: Record<string, unknown>, codeName?: string) => MemosdError;

const CLASSES: Record<number, ErrorClass> = {
  [ErrorCode.MALFORMED]: MalformedError,
  [ErrorCode.UNSUPPORTED_VERSION]: UnsupportedVersionError,
  [ErrorCode.UNKNOWN_OP]: UnknownOpError,
  [ErrorCode.INVALID_ARGUMENT]: InvalidArgumentError,
  [ErrorCode.INVALID_NAMESPACE]: InvalidNamespaceError,
  [ErrorCode.TOO_LARGE]: TooLargeError,
  [ErrorCode.NOT_FOUND]: NotFoundError,
  [ErrorCode.CONFLICT]: ConflictError,
  [ErrorCode.UNAVAILABLE]: UnavailableError,
  [ErrorCode.STORAGE_FULL]: StorageFullError,
  [ErrorCode.UNAUTHORIZED]: UnauthorizedError,
  [ErrorCode.FORBIDDEN]: ForbiddenError,
  [ErrorCode.BUSY]: BusyError,
  [ErrorCode.INTERNAL]: InternalError,
  [ErrorCode.TIMEOUT]: RequestTimeoutError,
  [ErrorCode.CONNECTION]: ConnectionFailedError,
  [ErrorCode.MOVED]: MovedError,
};

/** Build the typed error for a code (unknown codes give a plain {@link MemosdError}). */
export function errorFor(code: number, message: string, details: Record<string, unknown> = {},
                         codeName?: string): MemosdError {
  const cls = CLASSES[code] ?? MemosdError;
  return new cls(code, message, details, codeName);
}

/** The typed error for a reply's `error` map, read leniently. */
export function errorFromBody(body: unknown): MemosdError {
  if (body === null || typeof body !== "object") {
    return new InternalError(ErrorCode.INTERNAL, "error reply without an error body");
  }
  const b = body as Partial<ErrorBody>;
  const code = typeof b.code === "number" ? b.code : ErrorCode.INTERNAL;
  const details = b.details && typeof b.details === "object" ? b.details : {};
  return errorFor(code, typeof b.message === "string" ? b.message : "", details,
                  typeof b.name === "string" ? b.name : undefined);
}
