/**
 * The admin client: operations served only on the admin socket.
 */

import * as read from "../protocol/defaults";
import type {
  BackupResult, Grant, HelloResult, SnapshotResult, KeysCreateResult, KeysListResult, KeysRevokeResult, PluginsResult,
  ShutdownResult, StatusResult, TiersResult,
} from "../protocol/types";
import { defaultAdminEndpoint } from "../transport/endpoints";
import { Core, type ClientOptions } from "./base";

const SAFE = { retry: true };
const NEVER_RETRIED = { retry: false };

/** A client for the admin socket (`memosd-admin.sock` by default). Call {@link close} when done. */
export class AdminClient {
  private readonly core: Core;

  constructor(options: ClientOptions = {}) {
    this.core = new Core(options, defaultAdminEndpoint);
  }

  /** The endpoint this client talks to. */
  get endpoint(): string {
    return this.core.endpoint;
  }

  /** Close the connection; calls in flight fail with a ConnectionFailedError. */
  close(): void {
    this.core.close();
  }

  /** Handshake: protocol version, daemon version, capabilities, limits and encoder. */
  hello(): Promise<HelloResult> {
    return this.core.hello();
  }

  /** Daemon status: version, pid, uptime, store and writer health, per-operation counts. */
  async status(): Promise<StatusResult> {
    return read.statusResult(await this.core.call("status", null, {}, SAFE));
  }

  /** Stop the daemon cleanly (never resent automatically). */
  async shutdown(): Promise<ShutdownResult> {
    return read.plain<ShutdownResult>(await this.core.call("shutdown", null, {}, NEVER_RETRIED));
  }

  /** Write the index snapshot now, so that the next start has little to bring forward. */
  async snapshot(): Promise<SnapshotResult> {
    return read.plain<SnapshotResult>(await this.core.call("snapshot", null, {}, NEVER_RETRIED));
  }

  /** Write a consistent copy of the store into the new directory `dest` (on the daemon's machine). */
  async backup(dest: string): Promise<BackupResult> {
    return read.plain<BackupResult>(await this.core.call("backup", null, { dest }, NEVER_RETRIED));
  }

  /** Create a CURVE client key with namespace grants; the secret key is returned only here. */
  async keysCreate(name: string, grants: Grant[]): Promise<KeysCreateResult> {
    return read.plain<KeysCreateResult>(await this.core.call("keys_create", null, { name, grants }, NEVER_RETRIED));
  }

  /** Client keys and the server's public key. */
  async keysList(): Promise<KeysListResult> {
    return read.plain<KeysListResult>(await this.core.call("keys_list", null, {}, SAFE));
  }

  /** Revoke a client key. */
  async keysRevoke(name: string): Promise<KeysRevokeResult> {
    return read.plain<KeysRevokeResult>(await this.core.call("keys_revoke", null, { name }, SAFE));
  }

  /** Installed plugins, their status, and re-embedding progress. */
  async plugins(): Promise<PluginsResult> {
    return read.pluginsResult(await this.core.call("plugins", null, {}, SAFE));
  }

  /** Memory tiers per namespace (one namespace when given). */
  async tiers(namespace?: string): Promise<TiersResult> {
    return read.tiersResult(await this.core.call("tiers", null, { namespace }, SAFE));
  }
}
