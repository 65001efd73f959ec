"""Bearer keys of the streamable HTTP transport, mapped onto the daemon's own CURVE keys.

The bearer token is the client's CURVE secret key from ``memosd keys create`` (its z85 text
as in the key file, or that key's 64 hex digits as printed by ``memosd mcp --print-token``).
The MCP server derives the public key, connects to the daemon's CURVE TCP endpoint as that
key, and lets the daemon decide: its ZAP handler admits only active keys, and its grants
decide every request. This module adds no rights of its own; it only refuses, with HTTP 401,
a request whose token is missing, malformed, or whose key the daemon's handshake refuses (an
unknown or revoked key), so that such a client learns it at once instead of timing out.

It also binds each MCP session to the key and namespace that opened it: a later request in
the session with another key or namespace header is refused (403, 400).
"""

from __future__ import annotations

import binascii
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import anyio
import zmq
import zmq.utils.monitor
import zmq.utils.z85
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memosd_client import CurveKeys

from .daemon_link import Binding

NAMESPACE_HEADER = "x-memosd-namespace"
SESSION_HEADER = "mcp-session-id"


class TokenError(ValueError):
    """The bearer token is not a CURVE secret key."""


def secret_from_token(token: str) -> bytes:
    """The z85 secret key a bearer token stands for (z85 text, or the key's 64 hex digits)."""
    token = token.strip()
    if len(token) == 64:
        try:
            return zmq.utils.z85.encode(binascii.unhexlify(token))
        except (binascii.Error, ValueError):
            raise TokenError("a 64-character token must be hex") from None
    if len(token) == 40:
        try:
            zmq.utils.z85.decode(token.encode("ascii"))
        except (UnicodeEncodeError, ValueError, KeyError, IndexError):
            raise TokenError("a 40-character token must be z85 text") from None
        return token.encode("ascii")
    raise TokenError("the token must be a CURVE secret key: 40 z85 characters or 64 hex digits")


def token_for(keys: CurveKeys) -> str:
    """The hex bearer token of a key file's secret key (``memosd mcp --print-token``)."""
    return binascii.hexlify(zmq.utils.z85.decode(keys.secret_key.encode())).decode()


def keys_from_token(token: str, server_public_key: str) -> CurveKeys:
    """The client key pair a token stands for, with the daemon's public key."""
    secret = secret_from_token(token)
    try:
        public = zmq.curve_public(secret)
    except zmq.ZMQError as exc:
        raise TokenError(f"not a CURVE secret key: {exc}") from None
    return CurveKeys(public.decode(), secret.decode(), server_public_key)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, if there is one."""
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def http_binding(headers: Mapping[str, str], default_namespace: str | None, server_public_key: str) -> Binding:
    """Who an HTTP request acts as: its key (from the bearer token) and namespace (the
    ``X-Memosd-Namespace`` header, else the server's ``--namespace``)."""
    token = bearer_token(headers)
    if token is None:
        raise TokenError("no bearer token")
    namespace = headers.get(NAMESPACE_HEADER) or default_namespace
    return Binding(namespace=namespace, curve=keys_from_token(token, server_public_key))


class Verdict(Enum):
    ADMITTED = "admitted"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"


_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                     zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def probe_handshake(endpoint: str, keys: CurveKeys, timeout: float) -> Verdict:
    """Connect as ``keys`` and watch the CURVE handshake: the daemon's ZAP handler admits or
    refuses the key (no request is sent)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    keys.apply(sock)
    monitor = sock.get_monitor_socket()
    try:
        sock.connect(endpoint)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            if not monitor.poll(remaining * 1000):
                break
            event = zmq.utils.monitor.recv_monitor_message(monitor)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                return Verdict.ADMITTED
            if event in _HANDSHAKE_FAILED:
                return Verdict.REFUSED
        return Verdict.UNREACHABLE
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)


class KeyVerifier:
    """Asks the daemon whether it admits a key; an admission is remembered for ``ttl`` seconds
    (revocation still applies at once: the daemon checks every request)."""

    def __init__(self, endpoint: str, *, timeout: float = 3.0, ttl: float = 30.0, capacity: int = 1024):
        self.endpoint = endpoint
        self.timeout = timeout
        self.ttl = ttl
        self.capacity = capacity
        self._admitted: OrderedDict[str, float] = OrderedDict()

    async def verify(self, keys: CurveKeys) -> Verdict:
        seen = self._admitted.get(keys.public_key)
        if seen is not None and time.monotonic() - seen < self.ttl:
            return Verdict.ADMITTED
        verdict = await anyio.to_thread.run_sync(probe_handshake, self.endpoint, keys, self.timeout)
        if verdict is Verdict.ADMITTED:
            self._admitted[keys.public_key] = time.monotonic()
            self._admitted.move_to_end(keys.public_key)
            while len(self._admitted) > self.capacity:
                self._admitted.popitem(last=False)
        else:
            self._admitted.pop(keys.public_key, None)
        return verdict


@dataclass(frozen=True, slots=True)
class SessionOwner:
    key_digest: str
    namespace: str | None


class BearerKeyMiddleware:
    """ASGI middleware in front of the streamable HTTP app: bearer key in, daemon's verdict out."""

    def __init__(self, app: ASGIApp, *, verifier: KeyVerifier, server_public_key: str,
                 default_namespace: str | None, max_sessions: int = 10_000):
        self.app = app
        self.verifier = verifier
        self.server_public_key = server_public_key
        self.default_namespace = default_namespace
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, SessionOwner] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            binding = http_binding(headers, self.default_namespace, self.server_public_key)
        except TokenError as exc:
            await _refuse(send, 401, "UNAUTHORIZED", f"{exc}: send 'Authorization: Bearer <memosd key>'")
            return
        verdict = await self.verifier.verify(binding.curve)
        if verdict is Verdict.REFUSED:
            await _refuse(send, 401, "UNAUTHORIZED", "the daemon does not admit this key (unknown or revoked)")
            return
        if verdict is Verdict.UNREACHABLE:
            await _refuse(send, 503, "CONNECTION", f"the memosd daemon does not answer at {self.verifier.endpoint}")
            return
        owner = SessionOwner(hashlib.sha256(binding.curve.secret_key.encode()).hexdigest(), binding.namespace)
        session_id = headers.get(SESSION_HEADER)
        if session_id is not None and session_id in self._sessions:
            bound = self._sessions[session_id]
            if bound.key_digest != owner.key_digest:
                await _refuse(send, 403, "FORBIDDEN", "this MCP session was opened with another key")
                return
            if bound.namespace != owner.namespace:
                await _refuse(send, 400, "INVALID_NAMESPACE",
                              f"this MCP session is bound to namespace {bound.namespace!r}")
                return
            if scope["method"] == "DELETE":
                self._sessions.pop(session_id, None)

        async def send_binding(message: Message) -> None:
            # The SDK names a new session in the response to its initialize request: bind it here.
            if message["type"] == "http.response.start":
                for name, value in message.get("headers", []):
                    if name.decode("latin-1").lower() == SESSION_HEADER:
                        self._bind(value.decode("latin-1"), owner)
            await send(message)

        await self.app(scope, receive, send_binding)

    def _bind(self, session_id: str, owner: SessionOwner) -> None:
        self._sessions.setdefault(session_id, owner)
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="memosd"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
