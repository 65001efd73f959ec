"""Hostile and broken frames sent straight to the agent socket: each gets a typed error, nothing breaks."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memosd.testing import DaemonProcess
from memosd_client import MemoryIn
from memosd_client.protocol import OPERATIONS, codec
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import ErrorCode

from _support import RawPeer, envelope, export_digest

LIMITS = {"max_message_bytes": 65_536, "max_batch": 50, "max_k": 100, "max_text_bytes": 4_096}
SEED_NS = "seed-data"


@pytest.fixture(scope="module")
def daemon():
    """A daemon of its own, with small limits so that over-limit frames stay cheap to build."""
    env = {f"MEMOSD_LIMITS_{key.upper()}": str(value) for key, value in LIMITS.items()}
    proc = DaemonProcess(env=env)
    proc.start()
    yield proc
    proc.cleanup()


@pytest.fixture(scope="module")
def seed(daemon):
    """Data that no bad frame may change, and its export digest."""
    with daemon.client(SEED_NS) as client:
        ids = client.remember_many([MemoryIn(text=f"seed memory {i}", tags=["seed"], idempotency_key=f"seed-{i}")
                                    for i in range(20)]).ids
        client.update(ids[0], "seed memory 0, revised")
        client.forget(ids[1])
        return export_digest(client)


@pytest.fixture(autouse=True)
def intact_afterwards(daemon, seed):
    """After every test the daemon still answers and the seed data is unchanged."""
    yield
    with daemon.client(SEED_NS, timeout=5.0) as client:
        assert client.hello().protocol == 1
        assert export_digest(client) == seed
        assert client.recall("seed memory", k=5)


@pytest.fixture
def peer(daemon):
    with RawPeer(daemon.endpoint) as raw:
        yield raw


def test_hello_reports_the_configured_limits(daemon):
    with daemon.client() as client:
        limits = client.hello().limits
    assert msgspec.structs.asdict(limits) == LIMITS


# --------------------------------------------------------------------------- table of bad frames


def with_bad_utf8(frame: bytes, marker: bytes) -> bytes:
    """Replace ``marker`` inside an encoded frame by bytes of the same length that are not UTF-8."""
    assert frame.count(marker) == 1
    return frame.replace(marker, b"\xff\xfe" + marker[2:])


def good(op="get", args=None, ns="bad-input", **kw) -> bytes:
    return envelope(op, {"ids": [1]} if args is None and op == "get" else args, ns=ns, request_id=77, **kw)


def item(**fields) -> dict:
    return {"text": "a perfectly fine memory", **fields}


@dataclass
class Case:
    frames: list[bytes]
    codes: set[ErrorCode]
    echoed: bool = True
    """Whether the request id (77) is readable and so must be echoed; otherwise the reply id is 0."""


M, V, U, A, N, T = (ErrorCode.MALFORMED, ErrorCode.UNSUPPORTED_VERSION, ErrorCode.UNKNOWN_OP,
                    ErrorCode.INVALID_ARGUMENT, ErrorCode.INVALID_NAMESPACE, ErrorCode.TOO_LARGE)
nan, inf = math.nan, math.inf

CASES = {
    # undecodable frames
    "never-used msgpack byte": Case([b"\xc1"], {M}, echoed=False),
    "truncated msgpack": Case([good()[:-4]], {M}),  # the id near the start is still readable and echoed
    "random bytes": Case([random.Random(1).randbytes(64)], {M}, echoed=False),
    "empty frame": Case([b""], {M}, echoed=False),
    "array, not a map": Case([msgspec.msgpack.encode([1, "get", {}])], {M}, echoed=False),
    "integer, not a map": Case([msgspec.msgpack.encode(7)], {M}, echoed=False),
    "string, not a map": Case([msgspec.msgpack.encode("get 1")], {M}, echoed=False),
    "nil": Case([b"\xc0"], {M}, echoed=False),
    # envelope fields of the wrong type or missing
    "id is a string": Case([msgspec.msgpack.encode({"v": 1, "id": "77", "op": "get", "ns": "x"})], {M},
                           echoed=False),
    "v is a string": Case([good(v="1")], {M}),
    "op is an int": Case([envelope(5, {}, ns="x", request_id=77)], {M}),
    "ns is an int": Case([msgspec.msgpack.encode({"v": 1, "id": 77, "op": "get", "ns": 5, "args": {"ids": [1]}})],
                         {M}),
    "op missing": Case([msgspec.msgpack.encode({"v": 1, "id": 77, "ns": "x", "args": {}})], {M}),
    "v missing": Case([msgspec.msgpack.encode({"id": 77, "op": "get", "ns": "x", "args": {"ids": [1]}})], {M}),
    "unknown envelope field": Case([good(trace="abc")], {M}),
    "invalid UTF-8 in op": Case([with_bad_utf8(good(op="XXXXXXXX"), b"XXXXXXXX")], {M}),
    "invalid UTF-8 in ns": Case([with_bad_utf8(good(ns="XXXXXXXX"), b"XXXXXXXX")], {M}),
    # Inside args a string that is not UTF-8 is a bad argument value, not a broken frame.
    "invalid UTF-8 in text": Case([with_bad_utf8(good("remember", {"items": [item(text="XXXXXXXX")]}),
                                                 b"XXXXXXXX")], {A}),
    "invalid UTF-8 in meta key": Case([with_bad_utf8(good("remember", {"items": [item(meta={"XXXXXXXX": 1})]}),
                                                     b"XXXXXXXX")], {A}),
    # version and operation
    "protocol version 2": Case([good(v=2)], {V}),
    "protocol version 0": Case([good(v=0)], {V}),
    "hello for protocol 99": Case([good("hello", {"protocol": 99})], {V}),
    "unknown op": Case([good(op="drop_everything")], {U}),
    "admin op on the agent socket": Case([good("shutdown", {})], {ErrorCode.FORBIDDEN}),
    # frame count
    "two requests in one message": Case([good(), good()], {M}),
    "REQ-style empty delimiter": Case([b"", good()], {M}),
    "three frames": Case([good(), b"", b"x"], {M}, echoed=False),
    # arguments
    "args not a map": Case([good("get", [1, 2])], {A}),
    "unknown arg field": Case([good("remember", {"items": [item()], "urgent": True})], {A}),
    "unknown item field": Case([good("remember", {"items": [item(colour="red")]})], {A}),
    "ids not a list": Case([good("get", {"ids": 1})], {A}),
    "id is a float": Case([good("get", {"ids": [1.5]})], {A}),
    "text is an int": Case([good("remember", {"items": [item(text=5)]})], {A}),
    "tags is a string": Case([good("remember", {"items": [item(tags="red")]})], {A}),
    "meta is a list": Case([good("remember", {"items": [item(meta=[1])]})], {A}),
    "k is a string": Case([good("recall", {"query": "x", "k": "10"})], {A}),
    "vector as a list of floats": Case([good("recall", {"vector": [0.0] * 8})], {A}),
    "unknown tier": Case([good("recall", {"query": "x", "filters": {"tier": "forever"}})], {A}),
    "missing namespace": Case([good(ns=None)], {N}),
    "empty namespace": Case([good(ns="")], {N}),
    # values out of range
    "k = 0": Case([good("recall", {"query": "x", "k": 0})], {A}),
    "k = -1": Case([good("recall", {"query": "x", "k": -1})], {A}),
    "k = 10**9": Case([good("recall", {"query": "x", "k": 10**9})], {A, T}),
    "k over max_k": Case([good("recall", {"query": "x", "k": LIMITS["max_k"] + 1})], {A, T}),
    "list limit 0": Case([good("list", {"limit": 0})], {A}),
    "list limit huge": Case([good("list", {"limit": 10**6})], {A, T}),
    "id 0": Case([good("get", {"ids": [0]})], {A}),
    "id -5": Case([good("get", {"ids": [-5]})], {A}),
    "id 2**63": Case([good("get", {"ids": [2**63]})], {A}),
    "no ids": Case([good("get", {"ids": []})], {A}),
    "no items": Case([good("remember", {"items": []})], {A}),
    "empty text": Case([good("remember", {"items": [item(text="")]})], {A}),
    "blank text": Case([good("remember", {"items": [item(text=" \n\t ")]})], {A}),
    "NaN event_time": Case([good("remember", {"items": [item(event_time=nan)]})], {A}),
    "infinite event_time": Case([good("remember", {"items": [item(event_time=inf)]})], {A}),
    "NaN filter bound": Case([good("list", {"filters": {"after": nan}})], {A}),
    "NaN as_of": Case([good("recall", {"query": "x", "as_of": nan})], {A}),
    "NaN event_time in update": Case([good("update", {"id": 1, "event_time": nan})], {A}),
    "empty tag": Case([good("remember", {"items": [item(tags=[""])]})], {A}),
    "too many tags": Case([good("remember", {"items": [item(tags=[f"t{i}" for i in range(65)])]})], {A, T}),
    "empty idempotency key": Case([good("remember", {"items": [item(idempotency_key="")]})], {A}),
    "long idempotency key": Case([good("remember", {"items": [item(idempotency_key="k" * 201)]})], {A, T}),
    "long non-ASCII idempotency key": Case([good("remember", {"items": [item(idempotency_key="\U0001f600" * 200)]})],
                                           {A, T}),
    "both query and vector": Case([good("recall", {"query": "x", "vector": b"\0" * 16})], {A}),
    "neither query nor vector": Case([good("recall", {})], {A}),
    "vector of the wrong length": Case([good("recall", {"vector": b"\0" * 12})], {A}),
    "purge with ids and all": Case([good("purge", {"ids": [1], "all": True})], {A}),
    "purge with nothing": Case([good("purge", {})], {A}),
    # limits
    "batch over max_batch": Case([good("remember", {"items": [item()] * (LIMITS["max_batch"] + 1)})], {T}),
    "text over max_text_bytes": Case([good("remember", {"items": [item(text="x" * (LIMITS["max_text_bytes"] + 1))]})],
                                     {T}),
    "message over max_message_bytes": Case([good("remember", {"items": [item(meta={"pad": "x" * 70_000})]})], {T}),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_frame_gets_a_typed_error(peer, case):
    reply = peer.call(*case.frames)
    assert not reply.ok and reply.error is not None
    assert ErrorCode(reply.error.code) in case.codes, reply.error
    assert reply.error.name == ErrorCode(reply.error.code).name
    assert reply.error.message


def test_error_replies_echo_the_request_id(peer):
    # A client matches replies to requests by id: an error must carry the request's id unless the
    # frame was too broken to read one from (then 0). One test for all cases, as they share one cause.
    wrong = {}
    for label, case in CASES.items():
        reply = peer.call(*case.frames)
        expected = 77 if case.echoed else 0
        if reply.id != expected:
            wrong[label] = f"{label}: id {reply.id} instead of {expected} ({reply.error.name if reply.error else 'ok'})"
    assert not wrong, "\n".join(wrong.values())


def test_unsupported_version_lists_the_supported_ones(peer):
    reply = peer.call(good(v=9))
    assert reply.error.code == ErrorCode.UNSUPPORTED_VERSION
    assert reply.error.details["supported"] == [1]


def test_extreme_request_ids_are_echoed(peer):
    for request_id in (0, 1, 2**64 - 1, -1, -(2**63)):
        reply = peer.call(envelope("hello", {}, request_id=request_id))
        assert reply.ok and reply.id == request_id


def test_frame_over_the_hard_cap_does_not_hurt_the_daemon(daemon, peer):
    # Far over max_message_bytes: ZeroMQ drops the connection before buffering the frame.
    peer.send(good("remember", {"items": [item(text="x" * 4_000_000)]}))
    with RawPeer(daemon.endpoint) as fresh:
        assert fresh.call(envelope("hello", {}, request_id=5)).ok


def test_a_bad_write_never_fails_the_writes_committed_with_it(daemon, peer):
    # Pipelined writes are committed as a group; one invalid request among them must fail alone.
    frames = {}
    for request_id in range(1, 61):
        key = "\U0001f600" * 200 if request_id == 30 else f"group-{request_id}"
        frames[request_id] = envelope("remember", {"items": [item(text=f"grouped {request_id}",
                                                                  idempotency_key=key)]},
                                      ns="grouped", request_id=request_id)
    for frame in frames.values():
        peer.send(frame)
    replies = {}
    for _ in frames:
        reply = peer.reply()
        replies[reply.id] = reply
    assert set(replies) == set(frames)
    failed = {rid: r.error.name for rid, r in replies.items() if rid != 30 and not r.ok}
    assert failed == {}
    # The bad request itself is the client's fault, not a full disk.
    assert replies[30].error is not None
    assert replies[30].error.code in (ErrorCode.INVALID_ARGUMENT, ErrorCode.TOO_LARGE), replies[30].error
    with daemon.client("grouped") as client:
        assert len(client.list(limit=100).memories) == 59


@pytest.mark.parametrize("event_time", [2.05e15, -1e15, 1e300])
def test_an_event_time_past_the_calendar_is_stored_and_its_time_words_are_left_unresolved(daemon, event_time):
    # Any finite float is a valid event_time; the time words of the text resolve against it, and
    # "last year" in year 65 million has no date. The write must still be stored and indexed.
    with daemon.client("far-future") as client:
        memory_id = client.remember(f"we met last year and again on 8 May 2023 ({event_time})",
                                    event_time=event_time)
        assert client.get(memory_id).event_time == event_time
        hits = client.recall(f"met last year 8 May 2023 ({event_time})", k=3)
        assert hits and hits[0].memory.id == memory_id


def test_daemon_keeps_serving_good_requests_between_bad_ones(daemon, peer):
    with daemon.client("interleaved") as client:
        for i, case in enumerate(CASES.values()):
            peer.call(*case.frames)
            memory_id = client.remember(f"interleaved write {i}")
            assert client.get(memory_id).text == f"interleaved write {i}"


# --------------------------------------------------------------------------- fuzzing


def _templates() -> list[bytes]:
    """Valid requests of every kind (in a throwaway namespace) for the fuzzer to mutate."""
    enc = codec.encode_request
    items = [m.MemoryIn(text="fuzz memory one", tags=["a"], meta={"k": 1}, event_time=1.5e9, session="s",
                        idempotency_key="fz-key")]
    args = {
        "hello": m.HelloArgs(client="fuzz"),
        "remember": m.RememberArgs(items=items),
        "get": m.GetArgs(ids=[1, 2]),
        "list": m.ListArgs(limit=5, filters=m.Filters(tags=["a"], after=1.0)),
        "recall": m.RecallArgs(query="fuzz memory", k=3, filters=m.Filters(session="s")),
        "update": m.UpdateArgs(id=1, text="fuzz memory updated"),
        "history": m.HistoryArgs(id=1),
        "page": m.PageArgs(page=1),
        "entity": m.EntityArgs(name="fuzz"),
        "forget": m.IdsArgs(ids=[1]),
        "unforget": m.IdsArgs(ids=[1]),
        "purge": m.PurgeArgs(ids=[2]),
        "stats": m.StatsArgs(),
        "encode": m.EncodeArgs(texts=["fuzz memory"]),
        "export": m.ExportArgs(limit=3),
        "import": m.ImportArgs(memories=[m.Memory(id=9, text="imported", created_at=1.0, valid_from=1.0,
                                                  lineage=9)]),
    }
    # Admin operations are refused on the agent socket whatever their arguments; the rest are all here.
    assert set(args) == {name for name, op in OPERATIONS.items() if not op.admin}
    return [enc(i + 1, op, a, "fz") for i, (op, a) in enumerate(args.items())]


TEMPLATES = _templates()


@st.composite
def mutated(draw) -> bytes:
    frame = bytearray(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "duplicate"]))
        pos = draw(st.integers(0, max(len(frame) - 1, 0)))
        if kind == "flip" and frame:
            frame[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and frame:
            frame[pos] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xC0, 0xC1, 0xCB, 0xD9, 0xDF, 0xFF]))
        elif kind == "insert":
            frame[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del frame[pos:pos + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del frame[pos:]
        elif kind == "duplicate":
            frame[pos:pos] = frame[pos:pos + draw(st.integers(1, 16))]
    return bytes(frame)


# A fixed pool of awkward values keeps generation cheap enough for thousands of examples.
_AWKWARD = [None, True, False, 0, 1, -1, 2**31, 2**63 - 1, 2**64 - 1, -(2**63), 0.5, math.nan, math.inf, -math.inf,
            "", "x", "fz", "get", "\x00", "\U0001f600", "a" * 300, b"", b"\x00" * 4, [], [1], [[[]]], {}, {"a": 1},
            {"ids": [1]}, {"items": [{"text": "x"}]}, {"text": None}, [{"text": "y", "tags": [""]}]]
_values = st.one_of(st.sampled_from(_AWKWARD), st.integers(-(2**63), 2**64 - 1), st.text(max_size=8),
                    st.binary(max_size=8), st.lists(st.sampled_from(_AWKWARD), max_size=3))
_structured = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 1, 1, 0, 2]) | _values, "id": st.integers(-5, 2**64 - 1) | _values,
     "op": st.sampled_from(sorted(OPERATIONS) + ["", "nope"]) | _values, "ns": st.just("fz") | _values,
     "args": _values | st.dictionaries(st.sampled_from(["items", "ids", "id", "query", "k", "text", "filters",
                                                          "limit", "cursor", "vector", "all", "memories"]),
                                       _values, max_size=4)},
).map(msgspec.msgpack.encode)
_frame = st.one_of(mutated(), _structured, st.binary(max_size=200))
_message = st.lists(_frame, min_size=1, max_size=3)


def test_fuzzed_frames_never_break_the_daemon(daemon, seed):
    problems: list[str] = []
    peer = RawPeer(daemon.endpoint)

    @settings(max_examples=2000, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(_message)
    def send(frames):
        nonlocal peer
        peer.send(*frames)
        if not peer.sock.poll(10_000):
            problems.append(f"no reply to {frames!r}")
            peer.close()
            peer = RawPeer(daemon.endpoint)  # so a late reply cannot be taken for the next one
            return
        parts = peer.sock.recv_multipart()
        try:
            reply = codec.decode_reply(parts[0]) if len(parts) == 1 else None
        except Exception as exc:  # noqa: BLE001 - any undecodable reply is a finding
            problems.append(f"undecodable reply {parts!r} to {frames!r}: {exc}")
            return
        if reply is None:
            problems.append(f"{len(parts)}-frame reply to {frames!r}")
        elif not reply.ok and (reply.error is None or reply.error.code not in set(ErrorCode)
                               or reply.error.code == ErrorCode.INTERNAL):
            problems.append(f"{reply.error!r} for {frames!r}")

    try:
        send()
    finally:
        peer.close()
    with daemon.client(SEED_NS) as client:
        assert client.hello().protocol == 1
        assert export_digest(client) == seed
    assert problems == [], f"{len(problems)} bad answers, first ones:\n" + "\n".join(problems[:5])
