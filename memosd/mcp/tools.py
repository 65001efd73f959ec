"""The MCP tools and resources of memosd, each declared once as a typed function.

The SDK derives every input schema from the parameters (``Annotated`` with a pydantic
``Field`` carries each description and bound) and every output schema from the model named in
the return annotation (:mod:`memosd.mcp.models`). Tools take no namespace: the namespace (and,
over HTTP, the key) of a call is the one its server or session is bound to, resolved by
:class:`ServerState`.
"""

import json
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from memosd_client import AsyncClient
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import InvalidArgumentError, MemosdError, NotFoundError

from . import models as o
from .daemon_link import Binding, DaemonLink


@dataclass
class ServerState:
    """What every tool call needs: the daemon link and how a request maps to a :class:`Binding`
    (fixed for stdio; from the HTTP headers for streamable HTTP)."""

    link: DaemonLink
    resolve: Callable[[Mapping[str, str] | None], Binding]

    async def client(self, ctx: Context) -> AsyncClient:
        return await self.link.client(self.resolve(ctx.headers))


async def _client(ctx: Context) -> AsyncClient:
    state: ServerState = ctx.request_context.lifespan_context
    return await state.client(ctx)


def result(out: BaseModel, text: str) -> CallToolResult:
    """A successful tool result: compact text for the model, the same facts as structured content."""
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content=out.model_dump(mode="json"))


def _time(value: float | str | None, field: str) -> float | None:
    """Epoch seconds from a number or an ISO 8601 text (UTC unless it names a zone)."""
    if value is None or isinstance(value, (int, float)):
        return value
    from ..cli.output import parse_time

    try:
        return parse_time(value)
    except ValueError as exc:
        raise InvalidArgumentError(f"{field}: {exc}") from None


def _filters(session: str | None, tags: list[str] | None, after, before) -> m.Filters:
    return m.Filters(session=session, tags=list(tags or []), after=_time(after, "after"),
                     before=_time(before, "before"))


# Ids are unsigned 63-bit on the wire; a bound here makes a wrong one an argument error.
ID_BOUNDS = {"ge": 1, "lt": 2**63}
Time = float | str
TIME_HELP = "ISO 8601 (e.g. 2026-05-01T12:00:00Z; UTC when no zone) or epoch seconds"
Meta = dict[str, str | int | float | bool]

# --------------------------------------------------------------------------- writes


async def remember(
    ctx: Context,
    text: Annotated[str, Field(description="the memory itself: one fact, event or turn, in plain words")],
    tags: Annotated[list[str], Field(description="labels to filter by later, e.g. ['preference', 'project-x']")] = [],
    session: Annotated[str | None, Field(description="conversation or task this belongs to")] = None,
    source: Annotated[str | None, Field(description="who or what said it, e.g. 'user', 'web', a tool name")] = None,
    event_time: Annotated[Time | None, Field(description="when it happened, if not now: " + TIME_HELP)] = None,
    meta: Annotated[Meta | None, Field(description="small key/value facts kept with it")] = None,
) -> Annotated[CallToolResult, o.RememberOut]:
    """Store a memory durably in this namespace; returns its id. Store one fact or event per call,
    phrased so it makes sense on its own later (who, what, when)."""
    client = await _client(ctx)
    item = m.MemoryIn(text=text, tags=list(tags), session=session, source=source,
                      event_time=_time(event_time, "event_time"), meta=dict(meta or {}))
    stored = await client.remember_many([item])
    out = o.RememberOut(id=stored.ids[0], created=stored.created[0])
    return result(out, f"remembered #{out.id}" + ("" if out.created else " (already stored)"))


async def update(
    ctx: Context,
    id: Annotated[int, Field(**ID_BOUNDS, description="id of the current version to replace")],
    text: Annotated[str | None, Field(description="the corrected text (omit to keep it)")] = None,
    tags: Annotated[list[str] | None, Field(description="new tags (omit to keep them)")] = None,
    meta: Annotated[Meta | None, Field(description="new metadata (omit to keep it)")] = None,
    reason: Annotated[str | None, Field(description="why it changed, kept in the history")] = None,
) -> Annotated[CallToolResult, o.UpdateOut]:
    """Correct a memory: store a new version that supersedes it (the old one stays in its history
    and in recall with as_of). Returns the new version's id."""
    client = await _client(ctx)
    new_id = await client.update(id, text, tags=tags, meta=None if meta is None else dict(meta), reason=reason)
    return result(o.UpdateOut(id=new_id, supersedes=id), f"#{id} superseded by #{new_id}")


async def forget(
    ctx: Context,
    ids: Annotated[list[Annotated[int, Field(**ID_BOUNDS)]],
                   Field(min_length=1, description="ids of the memories to forget")],
) -> Annotated[CallToolResult, o.ForgetOut]:
    """Forget memories (reversible soft delete): they no longer appear in recall or list."""
    client = await _client(ctx)
    changed = await client.forget(list(ids))
    if changed.missing and not changed.changed:
        raise NotFoundError(f"no memory {', '.join(map(str, changed.missing))} in this namespace",
                            details={"missing": list(changed.missing)})
    out = o.ForgetOut(forgotten=list(changed.changed), missing=list(changed.missing))
    text = f"forgot {', '.join(f'#{i}' for i in out.forgotten) or 'nothing'}"
    if out.missing:
        text += f"; not found: {', '.join(map(str, out.missing))}"
    return result(out, text)


# --------------------------------------------------------------------------- reads


async def recall(
    ctx: Context,
    query: Annotated[str, Field(description="what to remember, in natural words")],
    k: Annotated[int, Field(ge=1, description="how many memories at most")] = 10,
    session: Annotated[str | None, Field(description="only memories of this session")] = None,
    tags: Annotated[list[str] | None, Field(description="only memories carrying these tags")] = None,
    after: Annotated[Time | None, Field(description="only events at or after this time: " + TIME_HELP)] = None,
    before: Annotated[Time | None, Field(description="only events before this time: " + TIME_HELP)] = None,
    as_of: Annotated[Time | None, Field(description="answer as memory stood at this time "
                                                    "(before later corrections): " + TIME_HELP)] = None,
) -> Annotated[CallToolResult, o.RecallOut]:
    """Search this namespace's memories for a query (hybrid lexical, vector and recency ranking);
    returns the best k with scores, ids and times."""
    client = await _client(ctx)
    hits = await client.recall(query, k=k, filters=_filters(session, tags, after, before),
                               as_of=_time(as_of, "as_of"))
    out = o.RecallOut.of(query, hits)
    return result(out, out.text())


async def get(
    ctx: Context,
    id: Annotated[int, Field(**ID_BOUNDS, description="memory version id")],
) -> Annotated[CallToolResult, o.MemoryOut]:
    """One memory version by id, with its provenance (session, source, times, what it supersedes)."""
    client = await _client(ctx)
    out = o.MemoryOut.of(await client.get(id))
    return result(out, out.line())


async def history(
    ctx: Context,
    id: Annotated[int, Field(**ID_BOUNDS, description="id of any version of the memory")],
) -> Annotated[CallToolResult, o.VersionsOut]:
    """Every version of a memory, oldest first: how it was corrected over time."""
    client = await _client(ctx)
    out = o.VersionsOut(versions=[o.MemoryOut.of(v) for v in await client.history(id)])
    return result(out, out.text())


async def list_memories(
    ctx: Context,
    limit: Annotated[int, Field(ge=1, le=1000, description="page size")] = 20,
    cursor: Annotated[int | None, Field(**ID_BOUNDS, description="next_cursor of the previous page")] = None,
    session: Annotated[str | None, Field(description="only memories of this session")] = None,
    tags: Annotated[list[str] | None, Field(description="only memories carrying these tags")] = None,
    after: Annotated[Time | None, Field(description="only events at or after this time: " + TIME_HELP)] = None,
    before: Annotated[Time | None, Field(description="only events before this time: " + TIME_HELP)] = None,
    include_forgotten: bool = False,
    include_superseded: bool = False,
) -> Annotated[CallToolResult, o.ListOut]:
    """Browse this namespace's memories in id (write) order, a page at a time."""
    client = await _client(ctx)
    page = await client.list(cursor=cursor, limit=limit, filters=_filters(session, tags, after, before),
                             include_forgotten=include_forgotten, include_superseded=include_superseded)
    out = o.ListOut(memories=[o.MemoryOut.of(mem) for mem in page.memories], next_cursor=page.next_cursor)
    return result(out, out.text())


async def entity(
    ctx: Context,
    name: Annotated[str, Field(min_length=1, description="a person, place or thing, matched case-insensitively")],
    limit: Annotated[int, Field(ge=1, le=1000, description="most recent pages to report")] = 20,
) -> Annotated[CallToolResult, o.EntityOut]:
    """What long-term memory knows about an entity: facts about it with the turns that state them,
    and the pages and turns that mention it."""
    client = await _client(ctx)
    out = o.EntityOut.of(await client.entity(name, limit=limit))
    return result(out, out.text())


async def page(
    ctx: Context,
    id: Annotated[int | None, Field(**ID_BOUNDS, description="page id (from entity's pages)")] = None,
    memory: Annotated[int | None, Field(**ID_BOUNDS, description="or: a memory id, to get the page holding it")] = None,
) -> Annotated[CallToolResult, o.PageOut]:
    """One page of long-term memory (a stretch of a session): its turns, summary, entities and facts."""
    if (id is None) == (memory is None):
        raise InvalidArgumentError("give exactly one of id or memory")
    client = await _client(ctx)
    out = o.PageOut.of(await client.page(id, memory=memory))
    return result(out, out.text())


READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)

TOOLS: list[tuple[Callable[..., Any], str, ToolAnnotations]] = [
    (remember, "remember", WRITE),
    (recall, "recall", READ),
    (get, "get", READ),
    (update, "update", WRITE),
    (forget, "forget", ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                                       open_world_hint=False)),
    (history, "history", READ),
    (list_memories, "list", READ),
    (entity, "entity", READ),
    (page, "page", READ),
]


# --------------------------------------------------------------------------- resources

# The SDK injects no Context into a static resource; the server sets this for each resource read.
CURRENT_CONTEXT: ContextVar[Context | None] = ContextVar("memosd_mcp_context", default=None)


async def _resource_client(ctx: Context | None) -> AsyncClient:
    if ctx is None:
        raise ResourceError("no request context")
    try:
        return await _client(ctx)
    except MemosdError as err:
        raise ResourceError(str(err)) from None


async def stats_resource() -> str:
    """Counts and sizes of this namespace: memories, current, superseded, forgotten, index bytes."""
    client = await _resource_client(CURRENT_CONTEXT.get())
    try:
        stats = await client.stats()
    except MemosdError as err:
        raise ResourceError(str(err)) from None
    if stats.namespaces:
        return msgspec.json.encode(stats.namespaces[0]).decode()
    return json.dumps({"name": client.namespace, "memories": 0, "current": 0, "superseded": 0, "forgotten": 0,
                       "index_bytes": 0})


async def entity_resource(name: str, ctx: Context) -> str:
    """An entity's long-term profile in this namespace (as the entity tool returns it)."""
    client = await _resource_client(ctx)
    try:
        return o.EntityOut.of(await client.entity(name)).model_dump_json()
    except MemosdError as err:
        raise ResourceError(str(err)) from None


def register(server: MCPServer) -> None:
    """Add every tool and resource to ``server``."""
    for fn, name, annotations in TOOLS:
        server.add_tool(fn, name=name, annotations=annotations)
    server.resource("memosd://stats", name="stats", mime_type="application/json")(stats_resource)
    server.resource("memosd://entity/{name}", name="entity", mime_type="application/json")(entity_resource)
