"""Encoding and decoding of protocol frames, with decode failures mapped to typed errors."""

from __future__ import annotations

import msgspec

from .errors import (
    InvalidArgumentError,
    MalformedError,
    MemosdError,
    UnknownOperationError,
    UnsupportedVersionError,
    error_from_code,
)
from .messages import OPERATIONS, PROTOCOL_VERSION, Envelope, ErrorBody, Operation, Reply, Struct

_encoder = msgspec.msgpack.Encoder()
_envelope_decoder = msgspec.msgpack.Decoder(Envelope)
_reply_decoder = msgspec.msgpack.Decoder(Reply)
_args_decoders = {name: msgspec.msgpack.Decoder(op.args) for name, op in OPERATIONS.items()}
_result_decoders = {name: msgspec.msgpack.Decoder(op.result) for name, op in OPERATIONS.items()}

DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)
"""What decoding untrusted bytes can raise (msgspec lets invalid UTF-8 through as UnicodeDecodeError,
and very deep nesting as RecursionError)."""


def encode(obj: object) -> bytes:
    """MessagePack-encode any wire struct or plain value."""
    return _encoder.encode(obj)


# --------------------------------------------------------------------------- requests


def encode_request(request_id: int, op: str, args: Struct, namespace: str | None = None,
                   deadline: float | None = None) -> bytes:
    """Build a request frame; ``deadline`` is time.time() after which the client stops waiting."""
    env = Envelope(v=PROTOCOL_VERSION, id=request_id, op=op, ns=namespace, args=msgspec.Raw(_encoder.encode(args)),
                   deadline=deadline)
    return _encoder.encode(env)


def decode_envelope(frame: bytes) -> Envelope:
    """Decode the outer request frame; raise MalformedError/UnsupportedVersionError/UnknownOperationError."""
    try:
        env = _envelope_decoder.decode(frame)
    except DECODE_ERRORS as exc:
        raise MalformedError(f"not a memosd request frame: {exc}") from None
    if env.v != PROTOCOL_VERSION:
        raise UnsupportedVersionError(
            f"protocol version {env.v} is not supported", details={"supported": [PROTOCOL_VERSION]}
        )
    if env.op not in OPERATIONS:
        raise UnknownOperationError(f"unknown operation {env.op!r}", details={"known": sorted(OPERATIONS)})
    return env


def decode_args(op: str, raw: msgspec.Raw) -> Struct:
    """Decode an envelope's ``args`` into the operation's args struct (InvalidArgumentError on mismatch)."""
    try:
        return _args_decoders[op].decode(raw)
    except DECODE_ERRORS as exc:
        raise InvalidArgumentError(f"bad arguments for {op!r}: {exc}") from None


def operation(op: str) -> Operation:
    return OPERATIONS[op]


def retry_safe(op: str, args: Struct) -> bool:
    """Whether a client may resend this request after a timeout.

    Purging a whole namespace is never resent: between two executions other
    clients' acknowledged writes could land, and the second would delete them.
    """
    if op == "purge" and getattr(args, "all", False):
        return False
    return OPERATIONS[op].retry_safe


# --------------------------------------------------------------------------- replies


def encode_result(request_id: int, result: Struct) -> bytes:
    return _encoder.encode(
        Reply(v=PROTOCOL_VERSION, id=request_id, ok=True, result=msgspec.Raw(_encoder.encode(result)))
    )


def encode_error(request_id: int, err: MemosdError) -> bytes:
    body = ErrorBody(code=int(err.code), name=err.code.name, message=err.message, details=err.details)
    return _encoder.encode(Reply(v=PROTOCOL_VERSION, id=request_id, ok=False, error=body))


def decode_reply(frame: bytes) -> Reply:
    try:
        return _reply_decoder.decode(frame)
    except DECODE_ERRORS as exc:
        raise MalformedError(f"not a memosd reply frame: {exc}") from None


def reply_result(op: str, reply: Reply) -> Struct:
    """Return the typed result of a reply, or raise the typed error it carries."""
    if not reply.ok:
        body = reply.error
        if body is None:
            raise MalformedError("error reply without an error body")
        raise error_from_code(body.code, body.message, body.details)
    try:
        return _result_decoders[op].decode(reply.result)
    except DECODE_ERRORS as exc:
        raise MalformedError(f"bad result for {op!r}: {exc}") from None
