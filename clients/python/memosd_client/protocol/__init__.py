"""The memosd wire protocol: messages, error codes and frame codec."""

from .codec import decode_args, decode_envelope, decode_reply, encode, encode_error, encode_request, encode_result, reply_result
from .errors import *  # noqa: F401,F403 - the error classes are part of the protocol's public surface
from .errors import ErrorCode, MemosdError, error_from_code
from .messages import *  # noqa: F401,F403
from .messages import OPERATIONS, PROTOCOL_VERSION, Operation

__all__ = [
    "OPERATIONS",
    "PROTOCOL_VERSION",
    "ErrorCode",
    "MemosdError",
    "Operation",
    "decode_args",
    "decode_envelope",
    "decode_reply",
    "encode",
    "encode_error",
    "encode_request",
    "encode_result",
    "error_from_code",
    "reply_result",
]
