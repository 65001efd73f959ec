"""Stable error codes of the memosd wire protocol and the exceptions that carry them.

The numeric codes never change meaning once released; new codes are only added.
The same classes are raised by the client library and used by the daemon to
build error replies, so a code means the same thing on both sides.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ErrorCode(IntEnum):
    """Error codes carried in every error reply (``error.code``)."""

    MALFORMED = 1
    """The frame could not be decoded as a memosd request (bad MessagePack, bad UTF-8, not a map)."""
    UNSUPPORTED_VERSION = 2
    """The request's protocol version is not spoken by this daemon."""
    UNKNOWN_OP = 3
    """The operation name is not known."""
    INVALID_ARGUMENT = 4
    """A field has the wrong type, an unknown name, or a value out of range."""
    INVALID_NAMESPACE = 5
    """The operation needs a namespace and none, or an invalid one, was given."""
    TOO_LARGE = 6
    """The message, batch or a field is over a configured limit."""
    NOT_FOUND = 7
    """The memory (or namespace) does not exist in this namespace."""
    CONFLICT = 8
    """The request contradicts stored state (e.g. updating a superseded version)."""
    UNAVAILABLE = 9
    """The daemon is shutting down or a subsystem is not ready; retry later."""
    STORAGE_FULL = 10
    """The store could not grow (disk full or map limit); nothing was written."""
    UNAUTHORIZED = 11
    """The client is not authenticated."""
    FORBIDDEN = 12
    """The client may not perform this operation on this namespace."""
    BUSY = 13
    """Backpressure: too many requests in flight; retry later."""
    INTERNAL = 14
    """An unexpected server error; the request had no effect unless stated."""
    TIMEOUT = 15
    """Client side: no reply arrived within the timeout."""
    CONNECTION = 16
    """Client side: the daemon could not be reached."""
    MOVED = 17
    """Cluster mode: another node owns the namespace; ``details.endpoint`` is where to send it."""


class MemosdError(Exception):
    """Base of all memosd errors; ``code`` is an :class:`ErrorCode`."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, code: ErrorCode | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"[{self.code.name}] {self.message}"


def _error_class(name: str, code: ErrorCode, doc: str) -> type[MemosdError]:
    return type(name, (MemosdError,), {"code": code, "__doc__": doc})


MalformedError = _error_class("MalformedError", ErrorCode.MALFORMED, "The frame could not be decoded.")
UnsupportedVersionError = _error_class(
    "UnsupportedVersionError", ErrorCode.UNSUPPORTED_VERSION, "Protocol version not supported."
)
UnknownOperationError = _error_class("UnknownOperationError", ErrorCode.UNKNOWN_OP, "Unknown operation.")
InvalidArgumentError = _error_class("InvalidArgumentError", ErrorCode.INVALID_ARGUMENT, "Bad field type or value.")
InvalidNamespaceError = _error_class("InvalidNamespaceError", ErrorCode.INVALID_NAMESPACE, "Missing or bad namespace.")
TooLargeError = _error_class("TooLargeError", ErrorCode.TOO_LARGE, "Over a configured size limit.")
NotFoundError = _error_class("NotFoundError", ErrorCode.NOT_FOUND, "No such memory in this namespace.")
ConflictError = _error_class("ConflictError", ErrorCode.CONFLICT, "Contradicts stored state.")
UnavailableError = _error_class("UnavailableError", ErrorCode.UNAVAILABLE, "Daemon not ready or stopping.")
StorageFullError = _error_class("StorageFullError", ErrorCode.STORAGE_FULL, "The store could not grow.")
UnauthorizedError = _error_class("UnauthorizedError", ErrorCode.UNAUTHORIZED, "Not authenticated.")
ForbiddenError = _error_class("ForbiddenError", ErrorCode.FORBIDDEN, "Not allowed on this namespace.")
BusyError = _error_class("BusyError", ErrorCode.BUSY, "Too many requests in flight.")
InternalError = _error_class("InternalError", ErrorCode.INTERNAL, "Unexpected server error.")
RequestTimeoutError = _error_class("RequestTimeoutError", ErrorCode.TIMEOUT, "No reply within the timeout.")
ConnectionFailedError = _error_class("ConnectionFailedError", ErrorCode.CONNECTION, "Daemon unreachable.")
MovedError = _error_class("MovedError", ErrorCode.MOVED, "The namespace is served by another node of the cluster.")

ERROR_CLASSES: dict[ErrorCode, type[MemosdError]] = {
    cls.code: cls
    for cls in (
        MalformedError,
        UnsupportedVersionError,
        UnknownOperationError,
        InvalidArgumentError,
        InvalidNamespaceError,
        TooLargeError,
        NotFoundError,
        ConflictError,
        UnavailableError,
        StorageFullError,
        UnauthorizedError,
        ForbiddenError,
        BusyError,
        InternalError,
        RequestTimeoutError,
        ConnectionFailedError,
        MovedError,
    )
}


def error_from_code(code: int, message: str, details: dict[str, Any] | None = None) -> MemosdError:
    """Build the exception matching a wire error code (unknown codes become :class:`MemosdError`)."""
    try:
        known = ErrorCode(code)
    except ValueError:
        err = MemosdError(message, details=details)
        err.details.setdefault("unknown_code", code)
        return err
    return ERROR_CLASSES[known](message, details=details)
