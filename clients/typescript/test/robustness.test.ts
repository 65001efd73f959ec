import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { decode, encode } from "@msgpack/msgpack";
import { Dealer, Router } from "zeromq";

import {
  Client, ConnectionFailedError, InvalidArgumentError, InvalidNamespaceError, NotFoundError, RequestTimeoutError,
  TooLargeError, UnsupportedVersionError,
} from "../src";
import { Daemon } from "./helpers/daemon";

// A small frame limit so a too-large frame is cheap to build.
const daemon = new Daemon({ MEMOSD_LIMITS_MAX_MESSAGE_BYTES: "200000" });
let mem: Client;

before(async () => { await daemon.start(); mem = daemon.client("robust"); });
after(async () => { mem?.close(); await daemon.cleanup(); });

test("bad input gets typed errors with stable codes, and nothing is stored", async () => {
  await assert.rejects(mem.getMany([]), (e: unknown) => e instanceof InvalidArgumentError && e.code === 4);
  await assert.rejects(mem.recall("x", { k: 0 }), InvalidArgumentError);
  await assert.rejects(mem.list({ filters: { tier: "nope" as any } }), InvalidArgumentError);
  await assert.rejects(mem.remember("t", { event_time: "now" as any }), InvalidArgumentError);
  await assert.rejects(mem.recall(42 as any), InvalidArgumentError);
  const badNs = daemon.client("bad/ns");
  await assert.rejects(badNs.remember("x"), (e: unknown) => e instanceof InvalidNamespaceError && e.code === 5);
  badNs.close();
  const noNs = daemon.client();
  await assert.rejects(noNs.getMany([1]), InvalidNamespaceError);
  noNs.close();
  await assert.rejects(mem.get(12345), (e: unknown) => e instanceof NotFoundError && e.code === 7);
  await assert.rejects(mem.update(12345, "x"), NotFoundError);
  await assert.rejects(mem.remember("x".repeat(70_000)), (e: unknown) => e instanceof TooLargeError && e.code === 6);
  assert.deepEqual((await mem.stats()).namespaces, []);
});

test("a frame over the daemon's limit gets TOO_LARGE matched to its request", async () => {
  const fresh = daemon.client("robust");  // no hello: the limit is not known client side, so the daemon refuses it
  try {
    await assert.rejects(fresh.remember("big meta", { meta: { blob: "y".repeat(250_000) } }),
                         (e: unknown) => e instanceof TooLargeError && e.details.limit === 200000);
    await fresh.hello();                  // now the client refuses it before sending
    await assert.rejects(fresh.remember("big meta", { meta: { blob: "y".repeat(250_000) } }), TooLargeError);
    assert.deepEqual((await fresh.stats()).namespaces, []);
  } finally {
    fresh.close();
  }
});

test("another protocol version is refused with UNSUPPORTED_VERSION", async () => {
  // The client only speaks v1: a raw frame is the one way to send another version.
  const sock = new Dealer();
  sock.connect(daemon.endpoint);
  await sock.send(encode({ v: 2, id: 5, op: "hello", args: {} }));
  const [frame] = await sock.receive();
  sock.close();
  const reply = decode(frame) as any;
  assert.equal(reply.id, 5);
  assert.equal(reply.error.code, 2);
  assert.ok(new UnsupportedVersionError(2, "").code === reply.error.code);
});

test("vectors travel as binary: encode gives Float32Array, recall by vector finds the memory", async () => {
  const ns = daemon.client("vectors");
  try {
    const id = await ns.remember("the lighthouse keeper feeds the cats");
    await ns.remember("quarterly revenue grew by nine percent");
    const enc = await ns.encode(["lighthouse keeper cats"]);
    assert.ok(enc.vectors[0] instanceof Float32Array);
    assert.equal(enc.vectors[0].length, enc.dim);
    const hits = await ns.recall(enc.vectors[0], { k: 1 });
    assert.equal(hits.hits[0].memory.id, id);
    await assert.rejects(ns.recall(new Float32Array(3)), (e: unknown) =>
      e instanceof InvalidArgumentError && /float32/.test(e.message));
  } finally {
    ns.close();
  }
});

test("namespaces are isolated: another namespace's ids are not found nor changed", async () => {
  const a = daemon.client("iso-a");
  const b = a.withNamespace("iso-b");
  try {
    const id = await a.remember("secret of a");
    assert.deepEqual((await b.getMany([id])).missing, [id]);
    assert.deepEqual((await b.forget(id)).missing, [id]);
    assert.deepEqual((await b.purge(id)).missing, [id]);
    await assert.rejects(b.update(id, "overwritten"), NotFoundError);
    assert.equal((await b.recall("secret")).hits.length, 0);
    assert.equal((await b.list()).memories.length, 0);
    assert.equal((await b.export()).memories.length, 0);
    await b.remember("b's own");
    await b.purgeNamespace();
    const kept = await a.get(id);
    assert.equal(kept.text, "secret of a");
    assert.equal(kept.forgotten_at, null);
  } finally {
    a.close();
  }
});

test("the same idempotency key is stored once", async () => {
  const ns = daemon.client("idem");
  try {
    const first = await ns.rememberMany([{ text: "pay invoice 17", idempotency_key: "inv-17" }]);
    const again = await ns.rememberMany([{ text: "pay invoice 17", idempotency_key: "inv-17" }]);
    assert.deepEqual(again.ids, first.ids);
    assert.deepEqual(again.created, [false]);
    const up1 = await ns.update(first.ids[0], { text: "paid invoice 17", idempotency_key: "inv-17-paid" });
    const up2 = await ns.update(first.ids[0], { text: "paid invoice 17", idempotency_key: "inv-17-paid" });
    assert.equal(up2.id, up1.id);
    assert.equal(up2.created, false);
    assert.equal((await ns.stats()).namespaces[0].memories, 2);
  } finally {
    ns.close();
  }
});

test("a write whose reply was lost is retried with the same key and stored once", async () => {
  // A relay on real sockets between client and daemon that drops the first reply: the
  // client times out and resends; the daemon must answer with the first write's id.
  const relayEndpoint = `ipc://${daemon.sockDir}/relay.sock`;
  const front = new Router();
  await front.bind(relayEndpoint);
  const back = new Dealer();
  back.connect(daemon.endpoint);
  let peer: Buffer | null = null;
  let seen = 0;
  const keys: string[] = [];
  void (async () => {
    for await (const [identity, frame] of front) {
      peer = identity;
      keys.push((decode(frame) as any).args.items[0].idempotency_key);
      await back.send(frame);
    }
  })().catch(() => {});
  void (async () => {
    for await (const [frame] of back) {
      if (seen++ === 0) continue;      // the lost reply
      await front.send([peer!, frame]);
    }
  })().catch(() => {});
  const client = new Client({ endpoint: relayEndpoint, namespace: "retry", timeoutMs: 500, retries: 2 });
  try {
    const id = await client.remember("ship order 99");
    assert.equal(keys.length, 2);
    assert.equal(keys[0], keys[1]);
    assert.equal(typeof keys[0], "string");
    const direct = daemon.client("retry");
    const st = await direct.stats();
    assert.equal(st.namespaces[0].memories, 1);
    assert.equal((await direct.get(id)).text, "ship order 99");
    direct.close();
  } finally {
    client.close(); front.close(); back.close();
  }
});

test("timeouts: a socket nobody answers gives RequestTimeoutError, a missing ipc file ConnectionFailedError", async () => {
  const silentEndpoint = `ipc://${daemon.sockDir}/silent.sock`;
  const silent = new Router();   // accepts frames and never replies
  await silent.bind(silentEndpoint);
  const c1 = new Client({ endpoint: silentEndpoint, namespace: "t", timeoutMs: 200, retries: 1 });
  const c2 = new Client({ endpoint: `ipc://${daemon.sockDir}/nobody.sock`, namespace: "t", timeoutMs: 200, retries: 0 });
  try {
    const started = Date.now();
    await assert.rejects(c1.getMany([1]), (e: unknown) => e instanceof RequestTimeoutError && e.code === 15);
    const took = Date.now() - started;
    assert.ok(took >= 400 && took < 2000, `took ${took} ms`);
    await assert.rejects(c2.hello(), (e: unknown) => e instanceof ConnectionFailedError && e.code === 16);
    // a namespace-wide purge is never resent
    const before = Date.now();
    await assert.rejects(c1.purgeNamespace(), RequestTimeoutError);
    assert.ok(Date.now() - before < 400);
  } finally {
    c1.close(); c2.close(); silent.close();
  }
});

test("the client reconnects after a daemon restart", async () => {
  const ns = daemon.client("restart", { timeoutMs: 300, retries: 0 });
  try {
    const id = await ns.remember("survives a restart");
    await daemon.stop();
    await assert.rejects(ns.get(id), (e: unknown) =>
      e instanceof ConnectionFailedError || e instanceof RequestTimeoutError);
    await daemon.start();
    assert.equal((await ns.get(id)).text, "survives a restart");
    assert.equal(typeof (await ns.remember("after the restart")), "number");
  } finally {
    ns.close();
  }
});
