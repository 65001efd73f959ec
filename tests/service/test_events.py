"""Events over a real ZeroMQ PUB socket and a real MQTT broker (mosquitto), including ingest
and broker outages."""

import json
import queue
import shutil
import socket
import subprocess
import time

import msgspec
import paho.mqtt.client as paho
import pytest
import zmq

from memosd.testing import DaemonProcess
from memosd_client.protocol.messages import Event


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Broker:
    """A real mosquitto on a free localhost port."""

    def __init__(self, port: int | None = None):
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not shutil.which(binary):
            pytest.fail("mosquitto is not installed: run `make test` (it installs it) or apt-get install mosquitto")
        self.binary = binary
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Broker":
        self.proc = subprocess.Popen([self.binary, "-p", str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


class Subscriber:
    """A plain MQTT client collecting messages from the broker."""

    def __init__(self, port: int, topic: str):
        self.messages: queue.Queue = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, msg: self.messages.put((msg.topic, msg.payload))
        subscribed = queue.Queue()
        self.client.on_subscribe = lambda *a: subscribed.put(True)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        subscribed.get(timeout=10)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def next(self, timeout: float = 10.0, topic_prefix: str = "") -> tuple[str, bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                topic, payload = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if topic.startswith(topic_prefix):
                return topic, payload
        raise AssertionError(f"no message under {topic_prefix!r} within {timeout}s")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def broker():
    b = Broker().start()
    yield b
    b.stop()


def test_zmq_pub_events_for_every_change(tmp_path):
    with DaemonProcess(tmp_path / "store") as daemon:
        with daemon.admin() as admin:
            endpoint = admin.status().events_endpoint
        assert endpoint and endpoint.startswith("ipc://")
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.connect(endpoint)
        sub.setsockopt(zmq.SUBSCRIBE, b"events-ns/")  # only this namespace
        time.sleep(0.3)  # PUB/SUB joins are asynchronous: let the subscription arrive
        decoder = msgspec.msgpack.Decoder(Event)

        def next_event() -> tuple[bytes, Event]:
            assert sub.poll(10_000), "no event published"
            topic, payload = sub.recv_multipart()
            return topic, decoder.decode(payload)

        with daemon.client("events-ns") as client, daemon.client("other-ns") as other:
            other.remember("not for this subscriber")
            first = client.remember("first")
            topic, event = next_event()
            assert topic == b"events-ns/remembered" and event.ids == [first]
            second = client.update(first, "second")
            topic, event = next_event()
            assert topic == b"events-ns/updated" and event.ids == [second] and event.details["supersedes"] == first
            client.forget(second)
            assert next_event()[1].kind == "forgotten"
            client.unforget(second)
            assert next_event()[1].kind == "unforgotten"
            client.purge(second)
            topic, event = next_event()
            assert event.kind == "purged" and sorted(event.ids) == sorted([first, second])
            client.remember("again")
            next_event()
            client.purge_namespace()
            assert next_event()[1].kind == "namespace_purged"
        sub.close()


def test_mqtt_events_out_and_ingest_in(tmp_path, broker):
    env = {"MEMOSD_EVENTS_MQTT_URL": f"mqtt://127.0.0.1:{broker.port}", "MEMOSD_EVENTS_MQTT_INGEST": "true"}
    with DaemonProcess(tmp_path / "store", env=env) as daemon:
        sub = Subscriber(broker.port, "memosd/#")
        try:
            deadline = time.monotonic() + 10
            with daemon.admin() as admin:
                while not admin.status().mqtt.get("connected"):
                    assert time.monotonic() < deadline, "daemon never connected to the broker"
                    time.sleep(0.05)
            with daemon.client("agent-7") as client:
                mid = client.remember("the kettle is in the left cupboard")
                topic, payload = sub.next(topic_prefix="memosd/events/")
                assert topic == "memosd/events/agent-7/remembered"
                assert json.loads(payload)["ids"] == [mid]

                # Ingest: an observation published to MQTT is stored like a ZeroMQ remember.
                sub.publish("memosd/ingest/agent-7", json.dumps({"text": "the cat sleeps on the sofa",
                                                                 "session": "s9"}).encode())
                topic, payload = sub.next(topic_prefix="memosd/ingest/agent-7/")
                assert topic == "memosd/ingest/agent-7/ack"
                ingested = json.loads(payload)["ids"][0]
                hit = client.recall("where does the cat sleep", k=1)[0]
                assert hit.memory.id == ingested and hit.memory.session == "s9"

                # Bad payloads get a typed error on the error topic and store nothing.
                sub.publish("memosd/ingest/agent-7", b'{"txt": 1}')
                topic, payload = sub.next(topic_prefix="memosd/ingest/agent-7/")
                assert topic == "memosd/ingest/agent-7/error"
                assert json.loads(payload)["name"] == "INVALID_ARGUMENT"
                sub.publish("memosd/ingest/bad namespace!", b'{"text": "x"}')
                topic, payload = sub.next(topic_prefix="memosd/ingest/bad namespace!/")
                assert json.loads(payload)["name"] == "INVALID_NAMESPACE"
                # Pathologically deep nesting is a bad payload too, and the bridge keeps going.
                sub.publish("memosd/ingest/agent-7", b"[" * 5000 + b"]" * 5000)
                topic, payload = sub.next(topic_prefix="memosd/ingest/agent-7/")
                assert topic == "memosd/ingest/agent-7/error"
                sub.publish("memosd/ingest/agent-7", b'{"text": "still ingesting after the bad ones"}')
                topic, payload = sub.next(topic_prefix="memosd/ingest/agent-7/")
                assert topic == "memosd/ingest/agent-7/ack"
                assert client.stats().namespaces[0].memories == 3
        finally:
            sub.close()


class TcpRelay:
    """A real TCP relay between the daemon and the broker: stopping it is a network outage.

    The broker itself keeps running, so a test subscriber can be subscribed before
    the daemon can reach the broker, and no event can slip past it.
    """

    def __init__(self, port: int, target: int):
        self.port, self.target = port, target
        self.server: socket.socket | None = None
        self.conns: list[socket.socket] = []
        self.thread = None

    def start(self) -> "TcpRelay":
        import threading

        self.server = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for conn in self.conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self.conns.clear()


def test_broker_outage_never_blocks_and_queued_events_arrive_later(tmp_path, broker):
    relay_port = free_port()
    env = {"MEMOSD_EVENTS_MQTT_URL": f"mqtt://127.0.0.1:{relay_port}"}
    sub = Subscriber(broker.port, "memosd/events/#")
    try:
        with DaemonProcess(tmp_path / "store", env=env) as daemon:
            with daemon.client("outage") as client:
                # The broker is unreachable: writes and reads work as usual, events wait in the queue.
                ids = [client.remember(f"written while the broker is unreachable {i}") for i in range(5)]
                assert len(client.recall("broker unreachable", k=10)) == 5
                with daemon.admin() as admin:
                    state = admin.status().mqtt
                assert state["connected"] is False and state["queued"] == 5

                relay = TcpRelay(relay_port, broker.port).start()
                try:
                    got = []
                    while len(got) < 5:
                        got += json.loads(sub.next(timeout=20)[1])["ids"]
                    assert sorted(got) == ids
                finally:
                    relay.stop()  # and the network goes away again
                later = client.remember("written after the outage began again")
                assert client.get(later).text == "written after the outage began again"
                with daemon.admin() as admin:
                    assert admin.status().writer_alive
    finally:
        sub.close()
