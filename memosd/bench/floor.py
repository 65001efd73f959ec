"""The pyzmq round-trip floor, measured in the same run as memosd.

A DEALER client sends a real memosd recall request frame to
:mod:`memosd.bench.echo_server` (blocking ROUTER, own process) and decodes a
reply of the same size as memosd's. Nothing memosd-specific happens on either
side, so memosd / floor is the cost of the daemon and client library on top of
what any pyzmq + MessagePack service pays on this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import zmq

from memosd_client.protocol import codec
from memosd_client.protocol import messages as m


class FloorServer:
    """Runs the echo server on a temporary ipc socket and a free tcp port."""

    def __init__(self, reply_frame: bytes, transports: list[str]):
        self._dir = Path(tempfile.mkdtemp(prefix="memosd-floor-", dir="/tmp"))  # short ipc path
        self._reply_file = self._dir / "reply.msgpack"
        self._reply_file.write_bytes(reply_frame)
        wanted = []
        if "ipc" in transports:
            wanted.append(f"ipc://{self._dir}/echo.sock")
        if "tcp" in transports:
            wanted.append("tcp://127.0.0.1:0")
        self._wanted = wanted
        self.endpoints: dict[str, str] = {}
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "FloorServer":
        cmd = [sys.executable, "-m", "memosd.bench.echo_server", "--reply-file", str(self._reply_file),
               *self._wanted]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"echo server exited with {self.proc.wait()}")
        for endpoint in json.loads(line)["endpoints"]:
            self.endpoints[endpoint.split("://", 1)[0]] = endpoint
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        for path in self._dir.iterdir():
            path.unlink(missing_ok=True)
        os.rmdir(self._dir)


class FloorClient:
    """Blocking DEALER doing exactly encode, send, receive, decode; nothing else."""

    def __init__(self, endpoint: str, namespace: str, k: int):
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(endpoint)
        self._namespace = namespace
        self._k = k
        self._id = 0
        self._decode = msgspec.msgpack.decode

    def round_trip(self, query: str) -> int:
        """One request/reply; returns the elapsed nanoseconds."""
        self._id += 1
        started = time.perf_counter_ns()
        frame = codec.encode_request(self._id, "recall", m.RecallArgs(query=query, k=self._k), self._namespace)
        self._sock.send(frame)
        reply = self._decode(self._sock.recv())
        elapsed = time.perf_counter_ns() - started
        if reply.get("id") != self._id:
            raise RuntimeError("echo server answered out of order")
        return elapsed

    def close(self) -> None:
        self._sock.close(linger=0)


def recall_reply_frame(hits: list[m.RecallHit]) -> bytes:
    """The reply frame memosd sends for these hits: the echo server imitates its size and shape."""
    return codec.encode_result(1, m.RecallResult(hits=hits, took_us=0))
