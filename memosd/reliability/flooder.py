"""The hostile client of the fairness suite: sends recalls as fast as it can and never reads a reply.

Run as its own process (``python -m memosd.reliability.flooder ENDPOINT NAMESPACE COUNT K``) so
that its sending does not share an interpreter lock with the polite clients being timed. It
connects, prints ``ready``, waits for a line on stdin, sends COUNT recalls (blocking while its
pipe to the daemon is full, as a careless client would), prints one JSON line with what it sent,
and keeps its connection open, replies unread, until stdin closes.
"""

from __future__ import annotations

import json
import random
import sys
import time

import zmq

from memosd_client.protocol import codec
from memosd_client.protocol import messages as m

from .common import sentence

SEND_TIMEOUT_MS = 60_000
"""Give up on a send after this long: the daemon stopped reading altogether (counted as unsent)."""


def flood(endpoint: str, namespace: str, count: int, k: int) -> None:
    """Connect, wait for the go line, send ``count`` recalls, report, wait for stdin to close."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
    sock.connect(endpoint)
    rng = random.Random(count)
    # Encoded before the go line, so the flood is the sending alone; queries match many memories.
    frames = [codec.encode_request(i + 1, "recall", m.RecallArgs(query=sentence(rng, 3), k=k), namespace)
              for i in range(min(count, 1000))]
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    sent = 0
    try:
        for i in range(count):
            sock.send(frames[i % len(frames)])
            sent += 1
    except zmq.Again:
        pass
    print(json.dumps({"sent": sent, "send_s": round(time.perf_counter() - started, 3)}), flush=True)
    sys.stdin.read()  # until the suite closes our stdin: the connection stays open, replies unread
    sock.close()
    ctx.term()


if __name__ == "__main__":
    flood(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
