import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, test } from "node:test";

import { decode, encode } from "@msgpack/msgpack";
import { Router } from "zeromq";

import { Client } from "../src";

const sockDir = fs.mkdtempSync(path.join(os.tmpdir(), "memosd-ts-dl-"));
after(() => fs.rmSync(sockDir, { recursive: true, force: true }));

/** A ROUTER on a real socket that records every envelope and answers only from the `answerFrom`-th on. */
async function recorder(name: string, answerFrom: number) {
  const endpoint = `ipc://${sockDir}/${name}.sock`;
  const sock = new Router();
  await sock.bind(endpoint);
  const seen: Array<{ env: Record<string, unknown>; at: number }> = [];
  void (async () => {
    for await (const [identity, frame] of sock) {
      const env = decode(frame) as Record<string, unknown>;
      seen.push({ env, at: Date.now() / 1000 });
      if (seen.length >= answerFrom) {
        await sock.send([identity, encode({ v: 1, id: env.id, ok: true, result: { memories: [], missing: [1] } })]);
      }
    }
  })().catch(() => {});
  return { endpoint, sock, seen };
}

test("with sendDeadline every attempt carries a fresh deadline of now + timeout, in epoch seconds", async () => {
  const r = await recorder("fresh", 2);   // the first attempt goes unanswered, so the client retries
  const client = new Client({ endpoint: r.endpoint, namespace: "dl", timeoutMs: 300, retries: 1, sendDeadline: true });
  try {
    const sentAfter = Date.now() / 1000;
    assert.deepEqual((await client.getMany([1])).missing, [1]);
    assert.equal(r.seen.length, 2);
    const [first, second] = r.seen;
    for (const { env, at } of r.seen) {
      assert.equal(typeof env.deadline, "number");
      // Set when the attempt was sent: after the call began, no later than its arrival, plus 0.3 s.
      assert.ok((env.deadline as number) >= sentAfter + 0.3 - 0.01, `deadline ${env.deadline} vs ${sentAfter}`);
      assert.ok((env.deadline as number) <= at + 0.3 + 0.01, `deadline ${env.deadline} vs arrival ${at}`);
    }
    // The retry was sent after the first attempt expired, so its deadline is past the first one.
    assert.ok((second.env.deadline as number) >= (first.env.deadline as number));
    assert.ok((second.env.deadline as number) >= first.at + 0.3 - 0.01);
  } finally {
    client.close(); r.sock.close();
  }
});

test("with sendDeadline: false the envelope has no deadline field", async () => {
  const r = await recorder("none", 1);
  const client = new Client({ endpoint: r.endpoint, namespace: "dl", timeoutMs: 2000, retries: 0, sendDeadline: false });
  try {
    await client.getMany([1]);
    assert.deepEqual(Object.keys(r.seen[0].env).sort(), ["args", "id", "ns", "op", "v"]);
  } finally {
    client.close(); r.sock.close();
  }
});

test("a write without an idempotency key is sent once, never resent after a timeout", async () => {
  const r = await recorder("once", Infinity);   // never answers
  const client = new Client({ endpoint: r.endpoint, namespace: "dl", timeoutMs: 200, retries: 2,
                              autoIdempotency: false });
  try {
    await assert.rejects(client.remember("no key"), (e: unknown) => (e as { code?: number }).code === 15);
    await assert.rejects(client.update(1, "no key either"), (e: unknown) => (e as { code?: number }).code === 15);
    assert.deepEqual(r.seen.map((s) => s.env.op), ["remember", "update"]);
  } finally {
    client.close(); r.sock.close();
  }
});
