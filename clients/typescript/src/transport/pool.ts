/**
 * The connections of one client to a cluster: the endpoint the client was made
 * with ("home"), one connection per other node that a MOVED reply sent it to, and
 * per namespace the node its requests go to. Against a single daemon only the
 * home connection is ever used.
 */

import { Connection, type ConnectionOptions } from "./connection";

export class Pool {
  /** The connection to the endpoint the client was made with. */
  readonly home: Connection;
  private readonly others = new Map<string, Connection>();
  /** Namespace -> endpoint of the node that owns it, as the last MOVED reply said. */
  private readonly routes = new Map<string, string>();

  constructor(endpoint: string, private readonly options: ConnectionOptions) {
    this.home = new Connection(endpoint, options);
  }

  /** Where requests for `ns` go: the owner a MOVED reply named, else home. */
  endpointFor(ns: string | null): string {
    return (ns !== null && this.routes.get(ns)) || this.home.endpoint;
  }

  /** Remember that `ns` is served at `endpoint` (a MOVED reply said so). */
  route(ns: string | null, endpoint: string): void {
    if (ns === null) return;
    if (endpoint === this.home.endpoint) this.routes.delete(ns);
    else this.routes.set(ns, endpoint);
  }

  /** Forget the route of `ns` if it still leads to `endpoint` (which did not answer): home is asked again. */
  forget(ns: string | null, endpoint: string): void {
    if (ns !== null && this.routes.get(ns) === endpoint) this.routes.delete(ns);
  }

  /**
   * The connection to `endpoint`, made on first use with the home connection's options (CURVE keys
   * included); its socket connects on its first request. Once closed, always the (closed) home one.
   */
  connection(endpoint: string): Connection {
    if (endpoint === this.home.endpoint || this.home.isClosed) return this.home;
    let conn = this.others.get(endpoint);
    if (!conn) {
      conn = new Connection(endpoint, this.options);
      conn.maxMessageBytes = this.home.maxMessageBytes;
      this.others.set(endpoint, conn);
    }
    return conn;
  }

  /** Frames over this many bytes are refused before sending, on every connection (set from `hello`). */
  setMaxMessageBytes(limit: number | null): void {
    this.home.maxMessageBytes = limit;
    for (const conn of this.others.values()) conn.maxMessageBytes = limit;
  }

  /** True once {@link close} was called. */
  get isClosed(): boolean {
    return this.home.isClosed;
  }

  /** Close every connection; requests in flight fail with a connection error. */
  close(): void {
    this.home.close();
    for (const conn of this.others.values()) conn.close();
    this.others.clear();
    this.routes.clear();
  }
}
