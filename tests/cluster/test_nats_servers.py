"""A real 3-server NATS JetStream cluster: a replicated stream keeps taking writes with one
server SIGKILLed, and the server comes back with every message after a restart."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from nats.js.api import StreamInfo
from nats.js.errors import NoStreamResponseError
from nats.errors import NoRespondersError, TimeoutError as NatsTimeoutError

from memosd.cluster.nats_servers import NatsCluster

STREAM = "EVENTS"


async def _publish(js, n: int, deadline: float) -> int:
    """Publish message ``n`` until a quorum acknowledges it; returns its stream sequence.

    Retries because a SIGKILLed stream leader is only replaced after an election of a
    few seconds; the message id lets JetStream drop a retry of a write that did land.
    """
    while True:
        try:
            ack = await js.publish(f"events.{n}", f"msg-{n}".encode(), timeout=2.0, headers={"Nats-Msg-Id": f"m{n}"})
            assert ack.stream == STREAM
            return ack.seq
        except (NatsTimeoutError, NoRespondersError, NoStreamResponseError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _stream_when_caught_up(js, deadline: float) -> StreamInfo:
    """Stream info once every replica reports itself current (the restarted one included)."""
    while True:
        info = await js.stream_info(STREAM)
        cluster = info.cluster
        if cluster and cluster.leader and len(cluster.replicas or []) == 2 and all(r.current for r in cluster.replicas):
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"stream replicas did not catch up: {info.cluster}")
        await asyncio.sleep(0.2)


@pytest.mark.timeout(90)
def test_replicated_stream_survives_a_killed_server(tmp_path):
    with NatsCluster(3, tmp_path) as cluster:
        assert len(cluster.urls) == 3 and all(url.startswith("nats://127.0.0.1:") for url in cluster.urls)
        cluster.wait_ready()

        async def before_kill() -> None:
            nc = await nats.connect(servers=cluster.urls)
            try:
                js = nc.jetstream()
                info = await js.add_stream(name=STREAM, subjects=["events.>"], num_replicas=3)
                assert info.config.num_replicas == 3
                seqs = [await _publish(js, n, time.monotonic() + 10) for n in range(1, 6)]
                assert seqs == [1, 2, 3, 4, 5]
            finally:
                await nc.close()

        asyncio.run(before_kill())

        cluster.kill(0)
        assert not cluster.alive(0) and cluster.alive(1) and cluster.alive(2)

        async def while_down() -> None:
            # Given every URL, the client skips the dead server; two of three is still a quorum.
            nc = await nats.connect(servers=cluster.urls, connect_timeout=1)
            try:
                js = nc.jetstream()
                deadline = time.monotonic() + 20
                for n in range(6, 11):
                    await _publish(js, n, deadline)
                assert (await js.stream_info(STREAM)).state.messages == 10
            finally:
                await nc.close()

        asyncio.run(while_down())

        cluster.restart(0)
        cluster.wait_ready()
        assert cluster.alive(0)

        async def after_restart() -> None:
            # Only the restarted server's URL: it must serve the stream again.
            nc = await nats.connect(servers=cluster.urls[:1])
            try:
                js = nc.jetstream()
                info = await _stream_when_caught_up(js, time.monotonic() + 20)
                assert info.state.messages == 10
                assert (info.state.first_seq, info.state.last_seq) == (1, 10)
                assert {info.cluster.leader, *(r.name for r in info.cluster.replicas)} == {"n1", "n2", "n3"}
                bodies = [(await js.get_msg(STREAM, seq)).data for seq in range(1, 11)]
                assert bodies == [f"msg-{n}".encode() for n in range(1, 11)]
            finally:
                await nc.close()

        asyncio.run(after_restart())

    assert not any(cluster.alive(i) for i in range(3))


def test_the_shipped_nats_server_config_is_accepted_by_nats_server():
    import subprocess
    from pathlib import Path

    from memosd.cluster.nats_servers import find_nats_server

    conf = Path(__file__).resolve().parents[2] / "systemd" / "cluster" / "nats-server.conf"
    checked = subprocess.run([find_nats_server(), "-c", str(conf), "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0 and "valid" in checked.stdout + checked.stderr
