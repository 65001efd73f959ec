"""A scripted stand-in for an OpenAI-compatible chat-completions server, for the tests only.

It listens on 127.0.0.1 on a free port, in a thread; each POST is recorded and
answered with the next scripted :class:`Reply` (or ``default`` when the script
is empty). No model runs: the replies are fixed by each test.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer: a status, a body, extra headers, or a hang until the server stops."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass
class Seen:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def completion(content: Any, prompt_tokens: int | None = 100, completion_tokens: int | None = 20,
               finish_reason: str = "stop") -> Reply:
    """A 200 chat completion whose message content is ``content`` (a dict is sent as its JSON text)."""
    text = content if isinstance(content, str) else json.dumps(content)
    body: dict[str, Any] = {
        "id": "chatcmpl-test", "object": "chat.completion", "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
    }
    if prompt_tokens is not None:
        body["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                         "total_tokens": prompt_tokens + completion_tokens}
    return Reply(body=body)


class FakeChatServer:
    """The server; use as a context manager. ``url`` is the base URL (``.../v1``) to configure."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.script: deque[Reply] = deque()
        self.default = Reply(status=500, body={"error": {"message": "no scripted reply"}})
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits for it, and every test stops a server.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), name="fake-chat-server",
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def next_reply(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            return self.script.popleft() if self.script else self.default

    def __enter__(self) -> FakeChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()  # lets hanging handlers finish
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def _handler(server: FakeChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"_raw": raw.decode("utf-8", "replace")}
            reply = server.next_reply(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if reply.hang:
                server.release.wait(30)
                return
            payload = reply.body if isinstance(reply.body, bytes) else (
                reply.body.encode() if isinstance(reply.body, str) else json.dumps(reply.body).encode())
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass  # keep test output clean

    return Handler
