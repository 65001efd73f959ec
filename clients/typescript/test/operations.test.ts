import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Client, ConflictError, ForbiddenError, NotFoundError, PROTOCOL_VERSION } from "../src";
import { Daemon } from "./helpers/daemon";

const daemon = new Daemon();
let mem: Client;

before(async () => { await daemon.start(); mem = daemon.client("ops"); });
after(async () => { mem?.close(); await daemon.cleanup(); });

test("hello returns protocol, limits and encoder", async () => {
  const h = await mem.hello();
  assert.equal(h.protocol, PROTOCOL_VERSION);
  assert.ok(h.limits.max_message_bytes > 0 && h.limits.max_k > 0);
  assert.ok(h.encoder.dim > 0);
  assert.ok(h.capabilities.includes("idempotency"));
});

test("remember, get, list, recall read back what was written", async () => {
  const id = await mem.remember("Alice moved to Lisbon", { session: "s1", tags: ["profile"], event_time: 1683504000,
                                                           meta: { turn: 3 } });
  const m = await mem.get(id);
  assert.equal(m.text, "Alice moved to Lisbon");
  assert.deepEqual(m.tags, ["profile"]);
  assert.deepEqual(m.meta, { turn: 3 });
  assert.equal(m.event_time, 1683504000);
  assert.equal(m.tier, "stm");            // omitted on the wire, default filled in
  assert.equal(m.forgotten_at, null);
  const batch = await mem.rememberMany(["Bob likes tea", { text: "Carol plays chess", session: "s2" }]);
  assert.equal(batch.ids.length, 2);
  assert.deepEqual(batch.created, [true, true]);
  const many = await mem.getMany([id, 999]);
  assert.deepEqual(many.memories.map((x) => x.id), [id]);
  assert.deepEqual(many.missing, [999]);
  const hits = await mem.recall("where does Alice live", { k: 2 });
  assert.equal(hits.hits[0].memory.id, id);
  assert.equal(hits.hits[0].rank, 1);
  const s2 = await mem.recall("chess", { filters: { session: "s2" } });
  assert.deepEqual(s2.hits.map((h) => h.memory.session), ["s2"]);
  const page = await mem.list({ limit: 2 });
  assert.equal(page.memories.length, 2);
  assert.notEqual(page.next_cursor, null);
  const all = [];
  for await (const x of mem.listAll({ limit: 1 })) all.push(x.id);
  assert.deepEqual(all, [id, ...batch.ids]);
});

test("update, history, conflict on a superseded version", async () => {
  const id = await mem.remember("Dave lives in Rome");
  const up = await mem.update(id, "Dave lives in Milan");
  assert.equal(up.supersedes, id);
  assert.equal(up.created, true);
  const versions = await mem.history(up.id);
  assert.deepEqual(versions.map((v) => v.text), ["Dave lives in Rome", "Dave lives in Milan"]);
  assert.equal(versions[0].superseded_by, up.id);
  await assert.rejects(mem.update(id, "again"), (e: unknown) =>
    e instanceof ConflictError && e.code === 8 && e.details.current === up.id);
  const asOf = await mem.recall("Dave", { as_of: versions[0].valid_from });
  assert.equal(asOf.hits[0].memory.id, id);
});

test("forget, unforget, purge", async () => {
  const id = await mem.remember("Erin drinks coffee");
  assert.deepEqual((await mem.forget([id, 4242])).missing, [4242]);
  assert.ok((await mem.get(id)).forgotten_at !== null);
  assert.ok(!(await mem.recall("Erin coffee")).hits.some((h) => h.memory.id === id));
  assert.deepEqual((await mem.unforget(id)).changed, [id]);
  assert.ok((await mem.recall("Erin coffee")).hits.some((h) => h.memory.id === id));
  const up = await mem.update(id, "Erin drinks tea");
  assert.equal((await mem.purge(up.id)).purged, 2);
  await assert.rejects(mem.get(id), NotFoundError);
  await assert.rejects(mem.get(up.id), NotFoundError);
});

test("stats, export, import, purgeNamespace", async () => {
  const src = daemon.client("export-src");
  const dst = daemon.client("export-dst");
  try {
    const a = await src.remember("first");
    await src.update(a, "first, corrected");
    await src.forget(await src.remember("second"));
    const st = await src.stats();
    assert.deepEqual(st.namespaces.map((n) => [n.name, n.memories, n.superseded, n.forgotten]),
                     [["export-src", 3, 1, 1]]);
    const exported = [];
    for await (const m of src.exportAll({ limit: 2 })) exported.push(m);
    assert.equal(exported.length, 3);
    assert.deepEqual(await dst.import(exported), { imported: 3, skipped: 0 });
    assert.deepEqual(await dst.import(exported), { imported: 0, skipped: 3 });
    assert.deepEqual((await dst.history(a)).map((m) => m.text), ["first", "first, corrected"]);
    assert.equal((await dst.purgeNamespace()).purged, 3);
    assert.deepEqual((await dst.getMany([1, 2, 3])).missing, [1, 2, 3]);
    const everyNs = (await src.stats({ all: true })).namespaces.map((n) => n.name);
    assert.ok(everyNs.includes("ops") && everyNs.includes("export-src"));
  } finally {
    src.close(); dst.close();
  }
});

test("page and entity answer NOT_FOUND for memories not consolidated yet", async () => {
  const id = await mem.remember("Frank visits Paris");
  await assert.rejects(mem.page({ memory: id }), NotFoundError);
  await assert.rejects(mem.entity("Nobody Known"), NotFoundError);
});

test("admin client: status, plugins, tiers, keys; admin ops are refused on the agent socket", async () => {
  const admin = daemon.admin();
  try {
    const st = await admin.status();
    assert.ok(st.pid > 0 && st.writer_alive);
    assert.ok(st.endpoints.includes(daemon.endpoint));
    assert.ok((await admin.plugins()).plugins.length > 0);
    assert.ok((await admin.tiers("ops")).namespaces.length <= 1);
    const key = await admin.keysCreate("ts-test", [{ namespace: "ops", rights: "read" }]);
    assert.equal(key.name, "ts-test");
    assert.ok((await admin.keysList()).keys.some((k) => k.name === "ts-test"));
    assert.equal((await admin.keysRevoke("ts-test")).revoked, true);
    const agentSideAdmin = daemon.client();
    // status is an admin operation: FORBIDDEN on the agent socket (sent through the base path on purpose)
    await assert.rejects((agentSideAdmin as any).core.call("status", null, {}, { retry: false }), ForbiddenError);
    agentSideAdmin.close();
  } finally {
    admin.close();
  }
});

test("shutdown stops the daemon", async () => {
  const admin = daemon.admin();
  try {
    assert.equal((await admin.shutdown()).stopping, true);
  } finally {
    admin.close();
  }
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && (daemon as any).proc?.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  assert.notEqual((daemon as any).proc.exitCode, null);
});
