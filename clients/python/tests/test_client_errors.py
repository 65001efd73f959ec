"""Client library behaviour against a real daemon: errors, timeouts, reconnects, concurrency."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid

import pytest

from memosd.testing import DaemonProcess
from memosd_client import AdminClient, AsyncClient, Client, MemoryIn
from memosd_client.protocol.errors import (
    ConflictError,
    ConnectionFailedError,
    ErrorCode,
    InvalidArgumentError,
    InvalidNamespaceError,
    MemosdError,
    NotFoundError,
    RequestTimeoutError,
    TooLargeError,
)

MAX_MESSAGE_BYTES = 65_536


@pytest.fixture(scope="module")
def daemon():
    """One daemon for the module, with a small message limit so TOO_LARGE is cheap to provoke, and room for
    the 420 requests the concurrency test keeps in flight on one socket (the default per-client queue, 64,
    answers the rest BUSY when the daemon is slower than the client: tests/test_fairness.py covers that)."""
    proc = DaemonProcess(env={"MEMOSD_LIMITS_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
                              "MEMOSD_LIMITS_MAX_QUEUED_PER_CLIENT": "1024"})
    proc.start()
    yield proc
    proc.cleanup()


@pytest.fixture
def ns(request) -> str:
    return f"client-{request.node.name[:60].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:8]}"


def run(coro):
    return asyncio.run(coro)


# --------------------------------------------------------------------------- typed errors


def test_typed_errors_carry_their_codes(daemon, ns):
    with daemon.client(ns) as client:
        v1 = client.remember("version one")
        v2 = client.update(v1, "version two")
        with pytest.raises(NotFoundError) as err:
            client.get(v2 + 100)
        assert err.value.code == ErrorCode.NOT_FOUND and isinstance(err.value, MemosdError)
        assert str(err.value).startswith("[NOT_FOUND] ")
        with pytest.raises(ConflictError) as err:
            client.update(v1, "stale edit")
        assert err.value.code == ErrorCode.CONFLICT and err.value.details["current"] == v2
        with pytest.raises(InvalidArgumentError) as err:
            client.recall("x", k=0)
        assert err.value.code == ErrorCode.INVALID_ARGUMENT and err.value.message
        with pytest.raises(InvalidNamespaceError) as err:
            client.remember("x", namespace="not a namespace")
        assert err.value.code == ErrorCode.INVALID_NAMESPACE
        with pytest.raises(TooLargeError) as err:
            client.remember("x" * (100 << 10))
        assert err.value.code == ErrorCode.TOO_LARGE


def test_async_client_raises_the_same_typed_errors(daemon, ns):
    async def main():
        async with daemon.async_client(ns) as client:
            memory_id = await client.remember("async version one")
            with pytest.raises(NotFoundError) as err:
                await client.get(memory_id + 100)
            assert err.value.code == ErrorCode.NOT_FOUND
            await client.update(memory_id, "async version two")
            with pytest.raises(ConflictError):
                await client.update(memory_id, "stale edit")
            with pytest.raises(InvalidArgumentError):
                await client.recall("x", k=0)

    run(main())


def big_batch() -> list[str]:
    # About twice the daemon's message limit, while every single text stays under the text limit.
    return [f"{i} " + "y" * 1_000 for i in range(2 * MAX_MESSAGE_BYTES // 1_000)]


def test_oversized_request_raises_too_large_in_the_sync_client(daemon, ns):
    with daemon.client(ns, timeout=5.0) as client:
        with pytest.raises(TooLargeError):
            client.remember_many(big_batch())
        assert client.list().memories == []


def test_oversized_request_raises_too_large_in_the_async_client(daemon, ns):
    async def main():
        async with daemon.async_client(ns, timeout=2.0, retries=0) as client:
            with pytest.raises(TooLargeError):
                await client.remember_many(big_batch())

    run(main())


# --------------------------------------------------------------------------- timeouts and reconnects


def test_nothing_listening_fails_fast_the_same_way_in_both_clients(tmp_path):
    endpoint = f"ipc://{tmp_path}/nobody.sock"
    with Client(endpoint, namespace="x", timeout=0.3, retries=1) as client:
        with pytest.raises(MemosdError) as sync_err:
            client.get(1)

    async def main():
        async with AsyncClient(endpoint, namespace="x", timeout=0.3, retries=1) as client:
            with pytest.raises(MemosdError) as async_err:
                await client.get(1)
        return async_err

    async_err = run(main())
    assert isinstance(sync_err.value, (RequestTimeoutError, ConnectionFailedError))
    assert sync_err.value.code in (ErrorCode.TIMEOUT, ErrorCode.CONNECTION)
    # Code written against one client must be able to catch the same error from the other.
    assert type(async_err.value) is type(sync_err.value)


def test_hung_daemon_times_out_and_the_same_client_recovers(memosd_daemon):
    with memosd_daemon.client("hang", timeout=0.3, retries=1) as client:
        memory_id = client.remember("stored before the hang")
        os.kill(memosd_daemon.proc.pid, signal.SIGSTOP)  # a daemon that accepts but never answers
        try:
            with pytest.raises(RequestTimeoutError) as err:
                client.get(memory_id)
            assert err.value.code == ErrorCode.TIMEOUT

            async def hung():
                async with memosd_daemon.async_client("hang", timeout=0.3, retries=1) as aclient:
                    with pytest.raises(RequestTimeoutError):
                        await aclient.get(memory_id)

            run(hung())
        finally:
            os.kill(memosd_daemon.proc.pid, signal.SIGCONT)
        client.timeout = 10.0
        # The late replies to the timed-out attempts must not be taken for this request's reply.
        assert client.get(memory_id).text == "stored before the hang"
        assert client.stats().namespaces[0].memories == 1


def test_same_clients_keep_working_after_kill_9_and_restart(memosd_daemon):
    loop = asyncio.new_event_loop()

    async def make_async_client():  # an asyncio socket belongs to the loop it is made on
        return memosd_daemon.async_client("restart")

    try:
        client = memosd_daemon.client("restart")
        aclient = loop.run_until_complete(make_async_client())
        first = client.remember("before the crash")
        second = loop.run_until_complete(aclient.remember("before the crash, async"))

        memosd_daemon.kill()
        memosd_daemon.start()

        assert client.get(first).text == "before the crash"
        assert loop.run_until_complete(aclient.get(second)).text == "before the crash, async"
        third = client.remember("after the restart")
        fourth = loop.run_until_complete(aclient.remember("after the restart, async"))
        assert len({first, second, third, fourth}) == 4
        assert client.get(fourth).text == "after the restart, async"
        client.close()
        loop.run_until_complete(aclient.close())
    finally:
        loop.close()


def test_shutdown_is_acknowledged_even_when_the_reply_is_read_late(tmp_path):
    class BusyAdmin(AdminClient):
        # Stands in for a client thread that is descheduled for a moment after sending (which
        # cannot be arranged for real on demand); the reply is already on its way by then.
        def _receive(self, request_id, deadline):
            time.sleep(0.3)
            return super()._receive(request_id, deadline)

    with DaemonProcess(tmp_path / "store") as own:
        with BusyAdmin(own.admin_endpoint, timeout=3.0) as admin:
            assert admin.shutdown().stopping
        assert own.proc.wait(timeout=30) == 0
        own.proc = None


# --------------------------------------------------------------------------- concurrency


def test_async_client_matches_200_concurrent_replies_by_id(daemon, ns):
    texts = [f"concurrent memory {i} {uuid.uuid4().hex}" for i in range(200)]

    async def main():
        async with daemon.async_client(ns) as client:
            ids = await asyncio.gather(*(client.remember(text) for text in texts))
            assert len(set(ids)) == 200
            order = list(range(200))
            random.shuffle(order)
            # Reads, misses and searches in flight together on one socket, answered in any order.
            calls = []
            for i in order:
                calls.append(client.get(ids[i]))
                calls.append(client.recall(texts[i].split()[-1], k=3))
            calls += [client.get(max(ids) + 1 + n) for n in range(20)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            for n, i in enumerate(order):
                got, hits = results[2 * n], results[2 * n + 1]
                assert (got.id, got.text) == (ids[i], texts[i])
                assert ids[i] in [hit.memory.id for hit in hits]
            assert all(isinstance(r, NotFoundError) for r in results[400:])

    run(main())


def test_sync_client_batch_matches_ids_in_order(daemon, ns):
    with daemon.client(ns) as client:
        items = [MemoryIn(text=f"batch item {i}", tags=[f"n{i}"]) for i in range(100)]
        result = client.remember_many(items)
        got = client.get_many(list(reversed(result.ids)))
        assert [m.text for m in got.memories] == [f"batch item {i}" for i in reversed(range(100))]


def test_async_client_gets_every_reply_while_earlier_replies_go_out(daemon, ns):
    # Small concurrent bursts: the daemon sends one reply while the next requests arrive. Each burst
    # must be answered whole (a daemon that missed the socket's wake-up after a send left one
    # request waiting until the client's timeout).
    async def main():
        async with AsyncClient(endpoint=daemon.endpoint, namespace=ns, timeout=5.0, retries=0) as client:
            await client.remember_many([f"note {i} about sourdough and Porto" for i in range(40)])
            for burst in range(40):
                found = await asyncio.gather(*(client.recall("sourdough Porto", k=1000) for _ in range(4)))
                assert [len(hits) for hits in found] == [40] * 4, burst

    run(main())
