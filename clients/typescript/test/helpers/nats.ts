/**
 * A real NATS server with JetStream for the cluster tests: a free port on 127.0.0.1,
 * a temp store dir, ready when its port accepts connections; killed if the test process exits.
 */

import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

const BIN = process.env.NATS_SERVER_BIN ?? "/usr/sbin/nats-server";

/** A port nobody listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.once("connect", () => { sock.destroy(); resolve(true); });
    sock.once("error", () => resolve(false));
  });
}

export class NatsServer {
  readonly storeDir = fs.mkdtempSync(path.join(os.tmpdir(), "memosd-ts-nats-"));
  port = 0;
  private proc: ChildProcess | null = null;
  private log = "";

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.port = await freePort();
    const proc = spawn(BIN, ["-js", "-a", "127.0.0.1", "-p", String(this.port), "-sd", this.storeDir],
                       { stdio: ["ignore", "pipe", "pipe"] });
    proc.stdout!.on("data", (d) => { this.log += d; });
    proc.stderr!.on("data", (d) => { this.log += d; });
    this.proc = proc;
    const kill = () => proc.kill("SIGKILL");
    process.once("exit", kill);
    proc.once("exit", () => process.off("exit", kill));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`nats-server exited with ${proc.exitCode}:\n${this.log}`);
      if (await accepts(this.port)) return this;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`nats-server did not accept connections on ${this.port}:\n${this.log}`);
  }

  async cleanup(): Promise<void> {
    const proc = this.proc;
    this.proc = null;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGKILL");
      await exited;
    }
    fs.rmSync(this.storeDir, { recursive: true, force: true });
  }
}
