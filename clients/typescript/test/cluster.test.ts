import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import type { Client, HelloResult } from "../src";
import { Daemon } from "./helpers/daemon";
import { NatsServer } from "./helpers/nats";

// Two real memosd nodes sharing one NATS JetStream server.
const nats = new NatsServer();
const nodes: Daemon[] = [];
const clients: Client[] = [];

function clusterNode(name: string): Daemon {
  return new Daemon({
    MEMOSD_CLUSTER_ENABLED: "1",
    MEMOSD_CLUSTER_SERVERS: nats.url,
    MEMOSD_CLUSTER_NODE: name,
    MEMOSD_CLUSTER_REPLICAS: "1",
  });
}

before(async () => {
  await nats.start();
  nodes.push(clusterNode("a"), clusterNode("b"));
  await Promise.all(nodes.map((d) => d.start()));
});

after(async () => {
  for (const c of clients) c.close();
  await Promise.all(nodes.map((d) => d.cleanup()));
  await nats.cleanup();
});

function client(node: Daemon, namespace: string): Client {
  const c = node.client(namespace);
  clients.push(c);
  return c;
}

test("a client of node b follows MOVED to node a, which owns the namespace", async () => {
  const [a, b] = nodes;
  const viaA = client(a, "ns1");
  const id = await viaA.remember("the owl lives in the old oak");  // node a takes ns1

  const viaB = client(b, "ns1");
  assert.equal(viaB.endpoint, b.endpoint);
  const id2 = await viaB.remember("the fox lives under the hedge");
  const hits = (await viaB.recall("where does the owl live", { k: 5 })).hits.map((h) => h.memory.id);
  assert.ok(hits.includes(id), `recall through b found ${JSON.stringify(hits)}, not ${id}`);
  assert.deepEqual((await viaA.getMany([id, id2])).memories.map((m) => m.id), [id, id2]);

  // Node a still owns ns1, and node b answered MOVED rather than taking it.
  const cluster = async (d: Daemon) => {
    const admin = d.admin();
    try {
      return (await admin.status()).cluster as { owned: Array<{ namespace: string }>; moved: number };
    } finally {
      admin.close();
    }
  };
  const [ca, cb] = await Promise.all([cluster(a), cluster(b)]);
  assert.deepEqual(ca.owned.map((o) => o.namespace), ["ns1"]);
  assert.deepEqual(cb.owned, []);
  assert.ok(cb.moved >= 1, `node b answered MOVED ${cb.moved} times`);
});

test("hello lists both nodes once membership is re-read", async () => {
  const names = (h: HelloResult) => h.nodes.map((n) => n.name).sort();
  const hellos = nodes.map((d) => client(d, "ns1"));
  const deadline = Date.now() + 10_000;
  let seen: string[][] = [];
  while (Date.now() < deadline) {
    seen = (await Promise.all(hellos.map((c) => c.hello()))).map(names);
    if (seen.every((n) => n.join() === "a,b")) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.deepEqual(seen, [["a", "b"], ["a", "b"]]);
  const hello = await hellos[1].hello();
  const byName = Object.fromEntries(hello.nodes.map((n) => [n.name, n.endpoint]));
  assert.deepEqual(byName, { a: nodes[0].endpoint, b: nodes[1].endpoint });
});
