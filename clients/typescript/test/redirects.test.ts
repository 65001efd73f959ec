import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, test } from "node:test";

import { decode, encode } from "@msgpack/msgpack";
import { Router } from "zeromq";

import { Client, ConnectionFailedError, MovedError, RequestTimeoutError, UnavailableError } from "../src";

// Fake cluster nodes: ROUTER sockets answering from a script, so every redirect case is exact and fast.
const sockDir = fs.mkdtempSync(path.join(os.tmpdir(), "memosd-ts-rd-"));
const socks: Router[] = [];
after(() => { for (const s of socks) s.close(); fs.rmSync(sockDir, { recursive: true, force: true }); });

type Env = Record<string, unknown>;
/** What a fake node answers to an envelope: an error body, a result (`{ok}`), or null for no answer. */
type Script = (env: Env, n: number) => { error: Record<string, unknown> } | { ok: unknown } | null;

async function node(name: string, script: Script) {
  const endpoint = `ipc://${sockDir}/${name}.sock`;
  const sock = new Router();
  await sock.bind(endpoint);
  socks.push(sock);
  const seen: Env[] = [];
  void (async () => {
    for await (const [identity, frame] of sock) {
      const env = decode(frame) as Env;
      seen.push(env);
      const out = script(env, seen.length);
      if (out === null) continue;
      const reply = "ok" in out ? { v: 1, id: env.id, ok: true, result: out.ok }
                                : { v: 1, id: env.id, ok: false, error: out.error };
      await sock.send([identity, encode(reply)]);
    }
  })().catch(() => {});
  return { endpoint, seen };
}

const moved = (endpoint: string) => ({ error: { code: 17, name: "MOVED", message: "moved", details: { endpoint, node: "x" } } });
const unavailable = (s: number) => ({ error: { code: 9, name: "UNAVAILABLE", message: "changing owner",
                                               details: { retry_after_s: s } } });
const stored = { ok: { ids: [7], created: [true] } };

test("MOVED is followed and remembered per namespace, for writes without a key too", async () => {
  const owner = await node("owner", () => stored);
  const home = await node("home", (env) => env.ns === "elsewhere" ? moved(owner.endpoint) : stored);
  const client = new Client({ endpoint: home.endpoint, namespace: "elsewhere", timeoutMs: 2000, autoIdempotency: false });
  try {
    assert.equal(await client.remember("first"), 7);   // home -> MOVED -> owner
    assert.equal(await client.remember("second"), 7);  // straight to owner: the route is remembered
    assert.equal(await client.withNamespace("local").remember("third"), 7);  // other namespaces stay home
    assert.deepEqual(home.seen.map((e) => e.ns), ["elsewhere", "local"]);
    assert.deepEqual(owner.seen.map((e) => (e.args as any).items[0].text), ["first", "second"]);
    assert.equal(client.endpoint, home.endpoint);
  } finally {
    client.close();
  }
  await assert.rejects(client.remember("after close"), ConnectionFailedError);
});

test("at most 5 MOVED hops are followed, then MovedError surfaces", async () => {
  const loop: { endpoint: string } = { endpoint: "" };
  const n = await node("loop", () => moved(loop.endpoint));
  loop.endpoint = n.endpoint;
  const client = new Client({ endpoint: n.endpoint, namespace: "ns", timeoutMs: 2000 });
  try {
    await assert.rejects(client.getMany([1]), (e: unknown) => e instanceof MovedError && e.code === 17);
    assert.equal(n.seen.length, 6);
  } finally {
    client.close();
  }
});

test("UNAVAILABLE with retry_after_s is waited out, within the call's overall timeout", async () => {
  const n = await node("unavail", (_env, i) => (i <= 2 ? unavailable(0.1) : { ok: { memories: [], missing: [1] } }));
  const client = new Client({ endpoint: n.endpoint, namespace: "ns", timeoutMs: 1000, retries: 0 });
  try {
    const t0 = Date.now();
    assert.deepEqual((await client.getMany([1])).missing, [1]);
    assert.ok(Date.now() - t0 >= 200, "waited retry_after_s twice");
    assert.equal(n.seen.length, 3);
  } finally {
    client.close();
  }
  const never = await node("never", () => unavailable(0.2));
  const stuck = new Client({ endpoint: never.endpoint, namespace: "ns", timeoutMs: 300, retries: 1 });  // 600 ms overall
  try {
    const t0 = Date.now();
    await assert.rejects(stuck.getMany([1]), UnavailableError);
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(never.seen.length, 3);  // at 0, 0.2 and 0.4 s; waiting again would pass 0.6 s
  } finally {
    stuck.close();
  }
});

test("a routed node that does not answer is forgotten and the home node is asked again", async () => {
  const silent = await node("silent", () => null);
  const home = await node("home2", (_env, i) => (i === 1 ? moved(silent.endpoint) : { ok: { memories: [], missing: [1] } }));
  const client = new Client({ endpoint: home.endpoint, namespace: "ns", timeoutMs: 300, retries: 0 });
  try {
    assert.deepEqual((await client.getMany([1])).missing, [1]);
    assert.equal(silent.seen.length, 1);
    assert.equal(home.seen.length, 2);
    await client.getMany([1]);  // the route is gone: home directly
    assert.equal(home.seen.length, 3);
  } finally {
    client.close();
  }
  // A write that cannot be resent safely surfaces the timeout (it may have been executed), route forgotten.
  const home3 = await node("home3", (_env, i) => (i === 1 ? moved(silent.endpoint) : stored));
  const once = new Client({ endpoint: home3.endpoint, namespace: "ns", timeoutMs: 300, autoIdempotency: false });
  try {
    await assert.rejects(once.remember("maybe stored"), RequestTimeoutError);
    assert.equal(await once.remember("home again"), 7);
    assert.equal(home3.seen.length, 2);
  } finally {
    once.close();
  }
});
