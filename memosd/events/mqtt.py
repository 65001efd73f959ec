"""Events out, and optionally observations in, over MQTT (aiomqtt).

Events go to ``<prefix>/events/<namespace>/<kind>`` as JSON. With ingest on,
agents publish memories to ``<prefix>/ingest/<namespace>`` (JSON or MessagePack:
one ``MemoryIn``, a list of them, or ``{"items": [...]}``); each is stored
through the same validation as a ZeroMQ ``remember`` and answered on
``<prefix>/ingest/<namespace>/ack`` (ids) or ``.../error`` (an error body).

A broker outage never blocks or breaks the daemon: ``offer`` only appends to a
bounded queue (the oldest event is dropped, and counted, when it is full), and
the bridge reconnects with backoff in its own task, resending what is queued.
"""

from __future__ import annotations

import asyncio
import collections
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiomqtt
import msgspec

from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import InternalError, InvalidArgumentError, MemosdError, TooLargeError

from ..logs import get_logger

log = get_logger("memosd.mqtt")

Remember = Callable[[str, m.RememberArgs], Awaitable[m.RememberResult]]


@dataclass(frozen=True, slots=True)
class MqttSettings:
    url: str
    prefix: str = "memosd"
    ingest: bool = False
    qos: int = 1
    queue_size: int = 10_000
    max_payload: int = 1 << 20


def _parse_ingest(payload: bytes) -> m.RememberArgs:
    """Accept a MemoryIn, a list of them, or {"items": [...]}, as JSON or MessagePack."""
    try:
        if payload[:1] in (b"{", b"["):
            raw = msgspec.json.decode(payload)
        else:
            raw = msgspec.msgpack.decode(payload)
        if isinstance(raw, dict) and "items" in raw:
            return msgspec.convert(raw, m.RememberArgs)
        if isinstance(raw, list):
            return m.RememberArgs(items=msgspec.convert(raw, list[m.MemoryIn]))
        return m.RememberArgs(items=[msgspec.convert(raw, m.MemoryIn)])
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidArgumentError(f"bad ingest payload: {exc}") from None


class MqttBridge:
    """Publishes events to, and optionally ingests memories from, an MQTT broker."""

    name = "mqtt"

    def __init__(self, settings: MqttSettings, remember: Remember):
        url = urllib.parse.urlsplit(settings.url)
        if url.scheme not in ("mqtt", "tcp", ""):
            raise ValueError(f"unsupported MQTT URL scheme {url.scheme!r} (use mqtt://host:port)")
        self.settings = settings
        self.host = url.hostname or "localhost"
        self.port = url.port or 1883
        self.username = url.username
        self.password = url.password
        self.remember = remember
        self.queue: collections.deque[m.Event] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._encode = msgspec.json.Encoder().encode
        self.connected = False
        self.published = 0
        self.dropped = 0
        self.reconnects = 0
        self.ingested = 0
        self.ingest_errors = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ event sink

    def offer(self, event: m.Event) -> None:
        if len(self.queue) >= self.settings.queue_size:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(event)
        self._wake.set()

    def state(self) -> dict:
        return {
            "connected": self.connected,
            "queued": len(self.queue),
            "published": self.published,
            "dropped": self.dropped,
            "reconnects": self.reconnects,
            "ingested": self.ingested,
            "ingest_errors": self.ingest_errors,
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="memosd-mqtt")
        self._task.add_done_callback(self._on_done)

    def _on_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.connected = False
            self.last_error = repr(task.exception())
            log.error("mqtt bridge stopped", error=self.last_error)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, username=self.username, password=self.password,
                                          keepalive=30) as client:
                    self.connected = True
                    backoff = 0.2
                    log.info("mqtt connected", host=self.host, port=self.port)
                    jobs = [asyncio.create_task(self._publish(client))]
                    if self.settings.ingest:
                        jobs.append(asyncio.create_task(self._ingest(client)))
                    try:
                        done, _ = await asyncio.wait(jobs, return_when=asyncio.FIRST_EXCEPTION)
                        for job in done:
                            job.result()
                    finally:
                        for job in jobs:
                            job.cancel()
                        await asyncio.gather(*jobs, return_exceptions=True)
            except aiomqtt.MqttError as exc:
                if self.connected:
                    log.warning("mqtt disconnected", error=str(exc))
                self.last_error = str(exc)
            except Exception as exc:  # a bug must cost a reconnect, never the bridge
                log.exception("mqtt bridge failed; reconnecting")
                self.last_error = repr(exc)
            self.connected = False
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _publish(self, client: aiomqtt.Client) -> None:
        prefix = self.settings.prefix
        while True:
            # Drain first: events queued while disconnected go out as soon as the connection is back.
            while self.queue:
                event = self.queue[0]
                topic = f"{prefix}/events/{event.namespace}/{event.kind}"
                await client.publish(topic, self._encode(event), qos=self.settings.qos)
                # Only a published event leaves the queue: a broken connection resends it after reconnecting.
                if self.queue and self.queue[0] is event:
                    self.queue.popleft()
                    self.published += 1
            self._wake.clear()
            if not self.queue:
                await self._wake.wait()

    async def _ingest(self, client: aiomqtt.Client) -> None:
        prefix = self.settings.prefix
        await client.subscribe(f"{prefix}/ingest/+", qos=1)
        async for message in client.messages:
            namespace = message.topic.value.rsplit("/", 1)[-1]
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            try:
                if len(payload) > self.settings.max_payload:
                    raise TooLargeError(f"ingest payload over {self.settings.max_payload} bytes")
                result = await self.remember(namespace, _parse_ingest(payload))
            except aiomqtt.MqttError:
                raise
            except Exception as exc:
                err = exc if isinstance(exc, MemosdError) else InternalError(f"ingest failed: {exc!r}")
                if not isinstance(exc, MemosdError):
                    log.exception("ingest failed", namespace=namespace)
                self.ingest_errors += 1
                body = m.ErrorBody(code=int(err.code), name=err.code.name, message=err.message, details=err.details)
                await client.publish(f"{prefix}/ingest/{namespace}/error", self._encode(body), qos=1)
                continue
            self.ingested += len(result.ids)
            await client.publish(f"{prefix}/ingest/{namespace}/ack", self._encode(result), qos=1)
