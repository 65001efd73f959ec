"""memosd client library: sync and asyncio clients over ZeroMQ, typed results and errors."""

from .aio import AsyncClient
from .client import AdminClient, Client
from .curve import CurveKeys
from .endpoints import default_admin_endpoint, default_endpoint
from .protocol.errors import *  # noqa: F401,F403 - typed exceptions are part of the client API
from .protocol.errors import ErrorCode, MemosdError
from .protocol.messages import Filters, Memory, MemoryIn, RecallHit

__version__ = "0.1.0"

__all__ = [
    "AdminClient",
    "AsyncClient",
    "Client",
    "CurveKeys",
    "ErrorCode",
    "Filters",
    "Memory",
    "MemoryIn",
    "MemosdError",
    "RecallHit",
    "default_admin_endpoint",
    "default_endpoint",
]
