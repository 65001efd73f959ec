"""The memosd MCP server on the SDK's ``MCPServer``, run over stdio or streamable HTTP.

Every failure of a tool call becomes an MCP tool error (``isError``) carrying the memosd error
code in its text (``[CODE] message``) and its structured content (:class:`~memosd.mcp.models.ErrorOut`);
the server keeps serving.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult, TextContent
from pydantic import ValidationError

from memosd_client.protocol.errors import ErrorCode, MemosdError

from . import tools
from .models import ErrorOut
from .tools import ServerState

INSTRUCTIONS = (
    "Long-term memory (memosd) bound to one namespace. Use `recall` before answering questions that "
    "may depend on earlier conversations; `remember` durable facts, preferences and decisions (one per "
    "call); correct a stale memory with `update` instead of storing a contradiction; `entity` gives "
    "what long-term memory knows about a person or thing."
)


def error_result(code: str, message: str, details: dict[str, Any] | None = None) -> CallToolResult:
    """A tool error: ``[CODE] message`` for the model, the same as structured content."""
    out = ErrorOut(code=code, message=message, details=details or {})
    return CallToolResult(content=[TextContent(type="text", text=f"[{code}] {message}")],
                          structured_content=out.model_dump(mode="json"), is_error=True)


def _validation_message(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "arguments"
        problems.append(f"{where}: {err['msg']}")
    return "; ".join(problems)


class MemosdMCPServer(MCPServer[ServerState]):
    """``MCPServer`` whose tool failures carry memosd error codes."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None):
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, MemosdError):
                return error_result(cause.code.name, cause.message, cause.details)
            if isinstance(cause, ValidationError):
                return error_result(ErrorCode.INVALID_ARGUMENT.name, _validation_message(cause))
            if isinstance(cause, (ValueError, OverflowError)):
                # e.g. a meta value the wire cannot carry (an integer over 64 bits)
                return error_result(ErrorCode.INVALID_ARGUMENT.name, str(cause))
            if isinstance(exc, UnexpectedToolError):
                raise  # a bug: the SDK logs it and answers a generic tool error
            if self._tool_manager.get_tool(name) is None:
                return error_result(ErrorCode.UNKNOWN_OP.name, f"unknown tool {name!r}")
            return error_result(ErrorCode.INVALID_ARGUMENT.name, str(exc))

    async def read_resource(self, uri, context=None):
        token = tools.CURRENT_CONTEXT.set(context)
        try:
            return await super().read_resource(uri, context)
        finally:
            tools.CURRENT_CONTEXT.reset(token)


def build_server(state: ServerState) -> MemosdMCPServer:
    """The MCP server with every memosd tool and resource, acting through ``state``."""

    @asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[ServerState]:
        # Shared by every session (HTTP runs one per session): closed by whoever made it.
        yield state

    from memosd import __version__

    server = MemosdMCPServer("memosd", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan,
                             log_level="WARNING")
    tools.register(server)
    return server
