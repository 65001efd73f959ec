"""What the MCP tools return as structured content: pydantic models (their JSON schemas are the
tools' output schemas), each built from the client's wire structs and rendered as compact text.

Times are epoch seconds (UTC) in structured content and ISO 8601 in text.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from memosd_client.protocol import messages as m


def iso(ts: float | None) -> str:
    """A compact UTC ISO 8601 time for text output ("-" when absent)."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class MemoryOut(BaseModel):
    """One stored memory version with its provenance."""

    id: int = Field(description="memory version id (use with get, update, forget, history)")
    text: str
    created_at: float = Field(description="write time, epoch seconds")
    event_time: float | None = Field(None, description="when it happened, epoch seconds, if given")
    valid_from: float
    valid_to: float | None = Field(None, description="set once superseded")
    tier: str = Field(description="stm, mtm or ltm")
    tags: list[str] = []
    session: str | None = None
    source: str | None = None
    meta: dict[str, Any] = {}
    lineage: int = Field(description="id of the first version of this memory")
    supersedes: int | None = None
    superseded_by: int | None = None
    forgotten_at: float | None = None

    @classmethod
    def of(cls, mem: m.Memory) -> "MemoryOut":
        return cls(id=mem.id, text=mem.text, created_at=mem.created_at, event_time=mem.event_time,
                   valid_from=mem.valid_from, valid_to=mem.valid_to, tier=mem.tier, tags=list(mem.tags),
                   session=mem.session, source=mem.source, meta=dict(mem.meta), lineage=mem.lineage,
                   supersedes=mem.supersedes, superseded_by=mem.superseded_by, forgotten_at=mem.forgotten_at)

    def line(self) -> str:
        """``#id [time, session, tags, flags] text`` on one line."""
        parts = [iso(self.event_time or self.created_at)]
        if self.session:
            parts.append(f"session {self.session}")
        if self.tags:
            parts.append("tags " + ",".join(self.tags))
        if self.superseded_by is not None:
            parts.append(f"superseded by #{self.superseded_by}")
        if self.forgotten_at is not None:
            parts.append("forgotten")
        return f"#{self.id} [{'; '.join(parts)}] {self.text}"


class RememberOut(BaseModel):
    id: int = Field(description="id of the stored memory")
    created: bool = Field(description="false when an identical earlier write (same idempotency key) was found")


class HitOut(BaseModel):
    rank: int
    score: float
    matched: list[str] = Field(description="which retrievers found it (e.g. lexical, dense, recency)")
    memory: MemoryOut


class RecallOut(BaseModel):
    query: str
    hits: list[HitOut]

    @classmethod
    def of(cls, query: str, hits: list[m.RecallHit]) -> "RecallOut":
        return cls(query=query, hits=[HitOut(rank=h.rank, score=h.score, matched=list(h.matched),
                                             memory=MemoryOut.of(h.memory)) for h in hits])

    def text(self) -> str:
        if not self.hits:
            return f"no memories match {self.query!r}"
        count = len(self.hits)
        lines = [f"{count} {'memory' if count == 1 else 'memories'} for {self.query!r}:"]
        lines += [f"{h.rank}. ({h.score:.3f}) {h.memory.line()}" for h in self.hits]
        return "\n".join(lines)


class UpdateOut(BaseModel):
    id: int = Field(description="id of the new version")
    supersedes: int = Field(description="id of the version it replaced")


class ForgetOut(BaseModel):
    forgotten: list[int] = Field(description="ids now forgotten")
    missing: list[int] = Field(description="ids not found in this namespace")


class VersionsOut(BaseModel):
    versions: list[MemoryOut] = Field(description="oldest first")

    def text(self) -> str:
        return "\n".join(v.line() for v in self.versions) or "no versions"


class ListOut(BaseModel):
    memories: list[MemoryOut]
    next_cursor: int | None = Field(None, description="pass as cursor for the next page; null at the end")

    def text(self) -> str:
        lines = [mem.line() for mem in self.memories] or ["no memories"]
        if self.next_cursor is not None:
            lines.append(f"(more: cursor={self.next_cursor})")
        return "\n".join(lines)


class FactOut(BaseModel):
    text: str
    sources: list[int] = Field(description="ids of the turns that state it (provenance)")
    event_time: float | None = None


class EntityOut(BaseModel):
    name: str
    pages: list[int] = Field(description="consolidated pages naming it, oldest first")
    mentions: list[int] = Field(description="ids of the turns naming it")
    facts: list[FactOut]
    first_time: float | None = None
    last_time: float | None = None

    @classmethod
    def of(cls, result: m.EntityResult) -> "EntityOut":
        return cls(name=result.name, pages=list(result.pages), mentions=list(result.mentions),
                   facts=[FactOut(text=f.text, sources=list(f.sources), event_time=f.event_time)
                          for f in result.facts],
                   first_time=result.first_time, last_time=result.last_time)

    def text(self) -> str:
        if not self.pages and not self.mentions and not self.facts:
            return f"nothing known about {self.name!r} in long-term memory yet"
        lines = [f"{self.name}: {len(self.mentions)} mentions on {len(self.pages)} pages, "
                 f"{iso(self.first_time)} .. {iso(self.last_time)}"]
        lines += [f"- {f.text} (from #{', #'.join(map(str, f.sources))})" for f in self.facts]
        return "\n".join(lines)


class PageOut(BaseModel):
    id: int
    session: str | None
    members: list[int] = Field(description="ids of the turns on this page")
    first_time: float
    last_time: float
    tier: str
    closed: bool
    consolidated: bool
    heat: float
    summary: str = ""
    keywords: list[str] = []
    entities: list[str] = []
    facts: list[FactOut] = []

    @classmethod
    def of(cls, page: m.PageResult) -> "PageOut":
        return cls(id=page.id, session=page.session, members=list(page.members), first_time=page.first_time,
                   last_time=page.last_time, tier=page.tier, closed=page.closed, consolidated=page.consolidated,
                   heat=page.heat, summary=page.summary, keywords=list(page.keywords),
                   entities=[e.name for e in page.entities],
                   facts=[FactOut(text=f.text, sources=list(f.sources), event_time=f.event_time)
                          for f in page.facts])

    def text(self) -> str:
        lines = [f"page {self.id} (session {self.session or '-'}, tier {self.tier}, {len(self.members)} turns, "
                 f"{iso(self.first_time)} .. {iso(self.last_time)})"]
        if self.summary:
            lines.append(f"summary: {self.summary}")
        if self.entities:
            lines.append("entities: " + ", ".join(self.entities))
        lines += [f"- {f.text} (from #{', #'.join(map(str, f.sources))})" for f in self.facts]
        return "\n".join(lines)


class ErrorOut(BaseModel):
    """Structured content of a failed tool call (``isError`` is set)."""

    code: str = Field(description="memosd error code, e.g. INVALID_ARGUMENT, TOO_LARGE, NOT_FOUND, FORBIDDEN")
    message: str
    details: dict[str, Any] = {}
