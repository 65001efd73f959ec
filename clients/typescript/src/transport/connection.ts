/**
 * One DEALER socket to one endpoint: requests in flight matched to replies by id,
 * a timeout per request, and a fresh socket after a timeout so that a request that
 * failed is not delivered later.
 */

import { Dealer } from "zeromq";

import { decodeReply, encodeEnvelope, type RawReply } from "../protocol/codec";
import { ConnectionFailedError, ErrorCode, RequestTimeoutError, TooLargeError, type MemosdError } from "../protocol/errors";
import { mayBeServed } from "./endpoints";

/** CURVE keys (Z85 text) for an encrypted, authenticated tcp connection. */
export interface CurveKeys {
  serverPublicKey: string;
  publicKey: string;
  secretKey: string;
}

export interface ConnectionOptions {
  curve?: CurveKeys;
  /** How often ZeroMQ retries a lost connection, in ms. */
  reconnectIntervalMs?: number;
  /** Send each request's `deadline` (now + its timeout) so the daemon can drop it once nobody waits. */
  sendDeadline?: boolean;
}

/** What one request is sent as. */
export interface Outgoing {
  op: string;
  ns: string | null;
  args: Record<string, unknown>;
}

interface Pending {
  resolve: (reply: RawReply) => void;
  reject: (err: MemosdError) => void;
  timer: NodeJS.Timeout;
}

/** A socket and the chain of its sends (zeromq allows one send in progress per socket). */
interface SocketState {
  sock: Dealer;
  sending: Promise<void>;
}

const MAX_ID = 2 ** 31 - 1;

export class Connection {
  private state: SocketState | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  /** Frames over this many bytes are refused here (set from `hello`'s limits). */
  maxMessageBytes: number | null = null;

  constructor(readonly endpoint: string, private readonly options: ConnectionOptions = {}) {}

  /** Send one request and wait up to `timeoutMs` for its reply. */
  request(out: Outgoing, timeoutMs: number): Promise<RawReply> {
    if (this.closed) {
      return Promise.reject(new ConnectionFailedError(ErrorCode.CONNECTION, "the client is closed"));
    }
    const id = this.takeId();
    // Computed per attempt: a retry gets a fresh deadline, never the expired one of the attempt before.
    const deadline = this.options.sendDeadline ? Date.now() / 1000 + timeoutMs / 1000 : undefined;
    const frame = encodeEnvelope({ id, ...out, deadline });
    if (this.maxMessageBytes !== null && frame.byteLength > this.maxMessageBytes) {
      // Frames over twice the limit would make the daemon drop the connection: refuse before sending.
      return Promise.reject(new TooLargeError(ErrorCode.TOO_LARGE,
        `message of ${frame.byteLength} bytes is over the limit of ${this.maxMessageBytes}`,
        { limit: this.maxMessageBytes, bytes: frame.byteLength }));
    }
    const state = this.socket();
    return new Promise<RawReply>((resolve, reject) => {
      const timer = setTimeout(() => this.expire(id, timeoutMs), timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      state.sending = state.sending
        .then(() => state.sock.send(frame))
        .catch(() => {
          // A send fails only when its socket was closed (timeout or close): that request is already settled.
        });
    });
  }

  /** True once {@link close} was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Requests waiting for a reply. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Close the socket; requests in flight fail with a connection error. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new ConnectionFailedError(ErrorCode.CONNECTION, "the client was closed"));
    }
    this.dropSocket();
  }

  private takeId(): number {
    const id = this.nextId;
    this.nextId = id >= MAX_ID ? 1 : id + 1;
    return id;
  }

  private socket(): SocketState {
    if (this.state) return this.state;
    const sock = new Dealer({
      linger: 0, // a closed socket drops what it had not sent
      reconnectInterval: this.options.reconnectIntervalMs ?? 100,
    });
    if (this.options.curve) {
      sock.curveServerKey = this.options.curve.serverPublicKey;
      sock.curvePublicKey = this.options.curve.publicKey;
      sock.curveSecretKey = this.options.curve.secretKey;
    }
    sock.connect(this.endpoint);
    const state: SocketState = { sock, sending: Promise.resolve() };
    this.state = state;
    void this.readLoop(state);
    return state;
  }

  private async readLoop(state: SocketState): Promise<void> {
    try {
      while (!state.sock.closed) {
        const [frame] = await state.sock.receive();
        this.deliver(frame);
      }
    } catch {
      // receive() rejects once the socket is closed; nothing else ends the loop.
    }
  }

  private deliver(frame: Buffer | undefined): void {
    if (!frame) return;
    const reply = decodeReply(frame);
    // Replies to requests that already timed out, and unreadable frames, have nobody waiting.
    if (!reply) return;
    const p = this.pending.get(reply.id);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(reply.id);
    p.resolve(reply);
  }

  private expire(id: number, timeoutMs: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    // With nothing else in flight, start over on a fresh socket: the unanswered frame
    // queued for a daemon that is down must not be delivered when it comes back.
    if (this.pending.size === 0) this.dropSocket();
    const details = { endpoint: this.endpoint, timeout_ms: timeoutMs };
    p.reject(mayBeServed(this.endpoint)
      ? new RequestTimeoutError(ErrorCode.TIMEOUT, `no reply from ${this.endpoint} within ${timeoutMs} ms`, details)
      : new ConnectionFailedError(ErrorCode.CONNECTION, `cannot reach ${this.endpoint}: no socket file`, details));
  }

  private dropSocket(): void {
    const state = this.state;
    this.state = null;
    if (state && !state.sock.closed) state.sock.close();
  }
}
