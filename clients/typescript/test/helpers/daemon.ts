/**
 * A real `memosd serve` for the tests: temp data dir, its own ipc sockets, ready
 * when the admin socket answers `status`; killed if the test process exits.
 */

import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { AdminClient, Client, type AgentClientOptions } from "../../src";

const BIN = process.env.MEMOSD_BIN ?? path.resolve(__dirname, "../../../../../.venv/bin/memosd");
const running = new Set<ChildProcess>();
process.on("exit", () => { for (const p of running) p.kill("SIGKILL"); });
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => { for (const p of running) p.kill("SIGKILL"); process.exit(1); });
}

export class Daemon {
  readonly dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "memosd-ts-data-"));
  readonly sockDir = fs.mkdtempSync("/tmp/memosd-ts-");  // ipc paths are limited to ~100 bytes
  readonly endpoint = `ipc://${this.sockDir}/memosd.sock`;
  readonly adminEndpoint = `ipc://${this.sockDir}/admin.sock`;
  private proc: ChildProcess | null = null;
  private log = "";

  constructor(private readonly env: Record<string, string> = {}) {}

  async start(): Promise<this> {
    const proc = spawn(BIN, ["serve", "--data-dir", this.dataDir, "--listen", this.endpoint,
                             "--admin-listen", this.adminEndpoint], {
      env: { ...process.env, MEMOSD_EVENTS_PUB_ENDPOINT: `ipc://${this.sockDir}/events.sock`, ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    proc.stdout!.on("data", (d) => { this.log += d; });
    proc.stderr!.on("data", (d) => { this.log += d; });
    this.proc = proc;
    running.add(proc);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`memosd exited with ${proc.exitCode}:\n${this.log}`);
      const admin = new AdminClient({ endpoint: this.adminEndpoint, timeoutMs: 500, retries: 0 });
      try {
        await admin.status();
        return this;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      } finally {
        admin.close();
      }
    }
    throw new Error(`memosd did not become ready:\n${this.log}`);
  }

  /** Stop with a signal (SIGTERM: clean) and wait for the exit. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    if (proc.exitCode === null) {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill(signal);
      await exited;
    }
    running.delete(proc);
  }

  async cleanup(): Promise<void> {
    await this.stop("SIGKILL");
    fs.rmSync(this.sockDir, { recursive: true, force: true });
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  client(namespace?: string, options: AgentClientOptions = {}): Client {
    return new Client({ endpoint: this.endpoint, namespace, timeoutMs: 10_000, ...options });
  }

  admin(): AdminClient {
    return new AdminClient({ endpoint: this.adminEndpoint, timeoutMs: 10_000 });
  }
}
