"""What the tiers persist: page records and long-term knowledge, in their own sub-databases.

``pages``     key ns_id(4) + page_id(8)              -> PageRecord
``knowledge`` key ns_id(4) + page_id(8) + index(4)   -> FactRecord

Both live in the same LMDB environment as the memories and change only inside
write transactions that also check the memories they name still exist, so a
crash at any point leaves either the old or the new state of a page, never a
page pointing at a purged memory or half of a page's knowledge. The memories
themselves are never rewritten by the tiers: a memory's tier is derived from
its page's state when it is read.
"""

from __future__ import annotations

import struct

import msgspec

_PAGE = struct.Struct(">IQ")
_FACT = struct.Struct(">IQI")


class EntityRecord(msgspec.Struct, frozen=True, array_like=True):
    name: str
    sources: list[int]


class PageRecord(msgspec.Struct, kw_only=True):
    """A run of related consecutive turns of one session (mid-term memory)."""

    id: int
    session: str | None
    members: list[int]
    """Memory ids, oldest first."""
    first_time: float
    last_time: float
    """Event time (else write time) of the first and last member: the time span of the page."""
    created_at: float
    closed: bool = False
    """A closed page takes no more turns and can be consolidated."""
    hits: float = 0.0
    touched_at: float = 0.0
    """Decayed hit count and when it was last updated (see heat.py)."""
    consolidated: bool = False
    policy: str = ""
    """name/version of the policy that consolidated the page ("" while not consolidated)."""
    summary: str = ""
    keywords: list[str] = msgspec.field(default_factory=list)
    entities: list[EntityRecord] = msgspec.field(default_factory=list)
    facts: int = 0
    """Number of FactRecords stored for this page."""


class FactRecord(msgspec.Struct, kw_only=True):
    """One piece of long-term knowledge with its provenance."""

    page: int
    text: str
    sources: list[int]
    event_time: float | None = None
    meta: dict = msgspec.field(default_factory=dict)


_encode = msgspec.msgpack.Encoder().encode
_page_decoder = msgspec.msgpack.Decoder(PageRecord)
_fact_decoder = msgspec.msgpack.Decoder(FactRecord)


def page_key(ns_id: int, page_id: int) -> bytes:
    return _PAGE.pack(ns_id, page_id)


def split_page_key(key: bytes) -> tuple[int, int]:
    return _PAGE.unpack(key)


def fact_prefix(ns_id: int, page_id: int) -> bytes:
    return _PAGE.pack(ns_id, page_id)


def fact_key(ns_id: int, page_id: int, index: int) -> bytes:
    return _FACT.pack(ns_id, page_id, index)


def encode(record: PageRecord | FactRecord) -> bytes:
    return _encode(record)


def decode_page(raw: bytes) -> PageRecord:
    return _page_decoder.decode(raw)


def decode_fact(raw: bytes) -> FactRecord:
    return _fact_decoder.decode(raw)
