"""The wire codec: typed errors for bad frames, round trips, and docs in sync with the definitions."""

from pathlib import Path

import msgspec
import pytest

from memosd_client.protocol import OPERATIONS, codec
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import (
    ERROR_CLASSES,
    ErrorCode,
    InvalidArgumentError,
    MalformedError,
    MemosdError,
    NotFoundError,
    UnknownOperationError,
    UnsupportedVersionError,
    error_from_code,
)


def test_request_round_trip():
    args = m.RecallArgs(query="alice", k=3, filters=m.Filters(session="s1", tags=["a"]))
    frame = codec.encode_request(42, "recall", args, "ns-1")
    env = codec.decode_envelope(frame)
    assert (env.id, env.op, env.ns) == (42, "recall", "ns-1")
    assert codec.decode_args("recall", env.args) == args


def test_result_and_error_replies_round_trip():
    ok = codec.decode_reply(codec.encode_result(5, m.RememberResult(ids=[1, 2], created=[True, False])))
    assert codec.reply_result("remember", ok) == m.RememberResult(ids=[1, 2], created=[True, False])
    bad = codec.decode_reply(codec.encode_error(6, NotFoundError("no memory 9", details={"id": 9})))
    with pytest.raises(NotFoundError) as info:
        codec.reply_result("get", bad)
    assert info.value.code == ErrorCode.NOT_FOUND and info.value.details == {"id": 9}


@pytest.mark.parametrize(
    "frame, error",
    [
        (b"\xc1", MalformedError),  # never-used msgpack byte
        (msgspec.msgpack.encode([1, 2, 3]), MalformedError),
        (msgspec.msgpack.encode({"v": 1, "id": "x", "op": "get"}), MalformedError),
        (msgspec.msgpack.encode({"v": 99, "id": 1, "op": "get"}), UnsupportedVersionError),
        (msgspec.msgpack.encode({"v": 1, "id": 1, "op": "drop_tables"}), UnknownOperationError),
        (b"\x81\xa2op\xa3\xff\xfe\xfd", MalformedError),  # invalid UTF-8 in a string
    ],
)
def test_bad_envelopes_raise_typed_errors(frame, error):
    with pytest.raises(error):
        codec.decode_envelope(frame)


@pytest.mark.parametrize(
    "op, args",
    [
        ("recall", {"query": "x", "k": "ten"}),
        ("recall", {"query": "x", "kk": 3}),
        ("remember", {"items": [{"text": 5}]}),
        ("remember", {"items": "nope"}),
        ("get", {"ids": [1.5]}),
    ],
)
def test_bad_args_raise_invalid_argument(op, args):
    with pytest.raises(InvalidArgumentError):
        codec.decode_args(op, msgspec.Raw(msgspec.msgpack.encode(args)))


def test_every_error_code_has_a_class_and_unknown_codes_degrade():
    assert set(ERROR_CLASSES) == set(ErrorCode)
    err = error_from_code(999, "future error")
    assert type(err) is MemosdError and err.details["unknown_code"] == 999


def test_every_operation_decodes_its_empty_or_minimal_args():
    minimal = {"remember": {"items": []}, "get": {"ids": []}, "update": {"id": 1}, "history": {"id": 1},
               "forget": {"ids": []}, "unforget": {"ids": []}, "import": {"memories": []},
               "keys_create": {"name": "k", "grants": []}, "keys_revoke": {"name": "k"}, "backup": {"dest": "/x"},
               "encode": {"texts": []}, "page": {"page": 1}, "entity": {"name": "x"}}
    for name in OPERATIONS:
        raw = msgspec.Raw(msgspec.msgpack.encode(minimal.get(name, {})))
        assert isinstance(codec.decode_args(name, raw), OPERATIONS[name].args)


def test_protocol_doc_is_in_sync_with_the_definitions():
    from memosd.cli.protocol_doc import MARKER, render

    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    assert MARKER in doc, "docs/protocol.md lost its generated section"
    generated = doc[doc.index(MARKER):]
    assert generated == render(), "docs/protocol.md is stale: regenerate it with `memosd protocol-doc`"


def test_replies_with_fields_from_a_newer_daemon_still_decode():
    newer = msgspec.msgpack.encode({"v": 1, "id": 3, "ok": True, "future_envelope_field": 1,
                                    "result": {"ids": [4], "created": [True], "future_result_field": "x"}})
    assert codec.reply_result("remember", codec.decode_reply(newer)) == m.RememberResult(ids=[4], created=[True])
