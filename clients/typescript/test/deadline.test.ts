import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { decode, encode } from "@msgpack/msgpack";
import { Dealer } from "zeromq";

import { Client } from "../src";
import { Daemon } from "./helpers/daemon";

const daemon = new Daemon();
let mem: Client;

before(async () => { await daemon.start(); mem = daemon.client("deadline", { sendDeadline: true }); });
after(async () => { mem?.close(); await daemon.cleanup(); });

test("requests carrying a deadline are served: hello, a write, reads", async () => {
  await mem.hello();
  const id = await mem.remember("the deadline travels with every request");
  assert.equal((await mem.get(id)).text, "the deadline travels with every request");
  assert.equal((await mem.recall("deadline travels", { k: 1 })).hits[0].memory.id, id);
});

test("a deadline of the wrong type is MALFORMED, matched to its request", async () => {
  // The client always sends a number: a raw frame is the one way to send another type.
  const sock = new Dealer();
  sock.connect(daemon.endpoint);
  try {
    await sock.send(encode({ v: 1, id: 9, op: "hello", deadline: "soon", args: {} }));
    const reply = decode((await sock.receive())[0]) as any;
    assert.equal(reply.id, 9);
    assert.equal(reply.error.code, 1);
  } finally {
    sock.close();
  }
});
