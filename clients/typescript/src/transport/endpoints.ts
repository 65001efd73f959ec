/**
 * Where the daemon listens by default (docs/protocol.md, "Sockets").
 */

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

function defaultSocketDir(): string {
  const env = process.env;
  // Same order as the daemon (memosd_client/endpoints.py): systemd's list keeps its first entry.
  if (env.RUNTIME_DIRECTORY) return env.RUNTIME_DIRECTORY.split(":")[0];
  if (env.MEMOSD_RUNTIME_DIR) return env.MEMOSD_RUNTIME_DIR.split(":")[0];
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, "memosd");
  return `/tmp/memosd-${os.userInfo().uid}`;
}

/** `$MEMOSD_ENDPOINT`, else the local agent ipc socket. */
export function defaultEndpoint(): string {
  return process.env.MEMOSD_ENDPOINT || `ipc://${path.join(defaultSocketDir(), "memosd.sock")}`;
}

/** `$MEMOSD_ADMIN_ENDPOINT`, else `memosd-admin.sock` beside the agent socket. */
export function defaultAdminEndpoint(): string {
  return process.env.MEMOSD_ADMIN_ENDPOINT || `ipc://${path.join(defaultSocketDir(), "memosd-admin.sock")}`;
}

/** The socket file of an ipc endpoint, or null for other transports. */
export function ipcPath(endpoint: string): string | null {
  return endpoint.startsWith("ipc://") ? endpoint.slice("ipc://".length) : null;
}

/** False only when the endpoint is ipc and its socket file does not exist (nobody can be serving it). */
export function mayBeServed(endpoint: string): boolean {
  const p = ipcPath(endpoint);
  return p === null || p.startsWith("@") || fs.existsSync(p);
}
