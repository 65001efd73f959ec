"""The store's operations as plans (see :mod:`.driver`): get, put/delete, search, list namespaces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langgraph.store.base import GetOp, InvalidNamespaceError, Item, ListNamespacesOp, MatchCondition, PutOp, SearchItem, SearchOp
from memosd_client import ConflictError, Filters, Memory, MemoryIn

from . import filtering, records
from .driver import Plan, Request
from .errors import InvalidFilterError
from .naming import NOINDEX_TAG, NamespaceCodec, key_idempotency, key_tag

LIST_PAGE = 1000
"""memosd's largest list page."""
UPDATE_ATTEMPTS = 8
"""Tries at superseding the current version while other writers keep superseding it."""


@dataclass(slots=True)
class Context:
    """What the plans need to know about the store and the daemon."""

    codec: NamespaceCodec
    fields: list[str]
    max_k: int = 1000
    max_text_bytes: int = 64 << 10
    limits_known: bool = False


def _limits(ctx: Context) -> Plan[None]:
    if not ctx.limits_known:
        hello = yield Request("hello", {"client": "memosd-langgraph"})
        ctx.max_k = hello.limits.max_k
        ctx.max_text_bytes = hello.limits.max_text_bytes
        ctx.limits_known = True


# ---------------------------------------------------------------------------- reads of one key


def _current(name: str, key: str) -> Plan[Memory | None]:
    """The current version holding ``key`` in the memosd namespace ``name``, exactly (no ranking)."""
    page = yield Request("list", {"namespace": name, "filters": Filters(tags=[key_tag(key)]), "limit": 10})
    found = [mem for mem in page.memories if records.stored_key(mem) == key]
    return found[-1] if found else None


def get(ctx: Context, op: GetOp) -> Plan[Item | None]:
    name = ctx.codec.encode(op.namespace) if op.namespace else None
    if name is None:  # the empty namespace, or one too long to be stored, holds nothing
        return None
    mem = yield from _current(name, op.key)
    return None if mem is None else records.to_item(mem, op.namespace)


# ---------------------------------------------------------------------------- writes


def put(ctx: Context, op: PutOp) -> Plan[None]:
    name = ctx.codec.encode_for_write(op.namespace)
    if op.value is None:
        mem = yield from _current(name, op.key)
        if mem is not None:
            # LangGraph's delete means gone: every version of the item, and its idempotency key.
            yield Request("purge", {"ids": [mem.id], "namespace": name})
        return
    value = records.normalize_value(op.value)
    text, ranked = records.index_text(value, op.key, op.index, ctx.fields)
    yield from _limits(ctx)
    # memosd bounds a memory's text, not its meta: a large value is kept whole and ranked on its start.
    text = records.clip_text(text, ctx.max_text_bytes)
    tags = [key_tag(op.key)] + ([] if ranked else [NOINDEX_TAG])
    mem = yield from _current(name, op.key)
    if mem is None:
        item = MemoryIn(text=text, meta=records.build_meta(op.key, value, None), tags=tags,
                        source=records.SOURCE, idempotency_key=key_idempotency(op.key))
        result = yield Request("remember_many", {"items": [item], "namespace": name})
        if result.created[0]:
            return
        # Another writer created the key first: its idempotency key named that lineage's first version.
        mem = yield Request("get", {"memory_id": result.ids[0], "namespace": name})
    meta = records.build_meta(op.key, value, records.created_at(mem))
    target = mem.id
    for _ in range(UPDATE_ATTEMPTS):
        try:
            yield Request("update", {"memory_id": target, "text": text, "meta": meta, "tags": tags,
                                     "namespace": name})
            return
        except ConflictError as exc:
            current = exc.details.get("current")
            if not isinstance(current, int):
                raise
            target = current  # superseded meanwhile: the last writer wins, as in LangGraph's stores
    raise ConflictError(f"key {op.key!r} kept changing under {UPDATE_ATTEMPTS} attempts to write it")


# ---------------------------------------------------------------------------- namespaces


def _stored_namespaces(ctx: Context) -> Plan[list[tuple[tuple[str, ...], str]]]:
    """Every namespace of this store that holds a current item: (tuple, memosd name), in tuple order."""
    stats = yield Request("stats", {"all_namespaces": True})
    found = []
    for ns in stats.namespaces:
        decoded = ctx.codec.decode(ns.name)
        if decoded is not None and ns.current > 0:
            found.append((decoded, ns.name))
    return sorted(found)


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path))
    else:
        raise InvalidFilterError(f"unsupported namespace match type {condition.match_type!r}")
    return all(want == "*" or have == want for have, want in pairs)


def list_namespaces(ctx: Context, op: ListNamespacesOp) -> Plan[list[tuple[str, ...]]]:
    stored = yield from _stored_namespaces(ctx)
    names = [ns for ns, _ in stored if all(_matches(c, ns) for c in op.match_conditions or ())]
    names = sorted({ns[: op.max_depth] for ns in names}) if op.max_depth is not None else names
    return names[op.offset: op.offset + op.limit]


# ---------------------------------------------------------------------------- search


def _check_page(limit: Any, offset: Any) -> None:
    for label, number in (("limit", limit), ("offset", offset)):
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise InvalidFilterError(f"{label} must be a non-negative integer, not {number!r}")


def _ours(mem: Memory) -> bool:
    return records.stored_key(mem) is not None


def search(ctx: Context, op: SearchOp) -> Plan[list[SearchItem]]:
    prefix = tuple(op.namespace_prefix)
    stored = yield from _stored_namespaces(ctx)
    scope = [(ns, name) for ns, name in stored if ns[: len(prefix)] == prefix]
    want = op.offset + op.limit
    if not scope or op.limit == 0:
        return []
    found: list[SearchItem] = []
    seen: set[tuple[str, int]] = set()
    if op.query and op.query.strip():
        yield from _limits(ctx)
        # Without a filter the top `want` of each namespace is enough; with one, rank as many as allowed.
        k = ctx.max_k if op.filter else max(1, min(ctx.max_k, want))
        replies = yield [Request("recall", {"query": op.query, "k": k, "namespace": name}) for _, name in scope]
        ranked = []
        for position, ((ns, name), hits) in enumerate(zip(scope, replies)):
            for hit in hits:
                mem = hit.memory
                if not _ours(mem) or NOINDEX_TAG in mem.tags:
                    continue
                seen.add((name, mem.id))
                if filtering.matches(mem.meta[records.META_KEY]["value"], op.filter):
                    ranked.append((-hit.score, position, hit.rank, ns, mem, hit.score))
        ranked.sort(key=lambda r: r[:3])
        found = [records.to_search_item(mem, ns, score) for *_, ns, mem, score in ranked]
        if len(found) >= want:
            return found[op.offset: want]
    # Unranked items (no query, or past memosd's ranking): namespace order, then oldest version first.
    for ns, name in scope:
        cursor = None
        while len(found) < want:
            page = yield Request("list", {"namespace": name, "cursor": cursor, "limit": LIST_PAGE})
            for mem in page.memories:
                if (name, mem.id) in seen or not _ours(mem):
                    continue
                if filtering.matches(mem.meta[records.META_KEY]["value"], op.filter):
                    found.append(records.to_search_item(mem, ns, None))
                    if len(found) >= want:
                        break
            cursor = page.next_cursor
            if cursor is None:
                break
        if len(found) >= want:
            break
    return found[op.offset: want]


# ---------------------------------------------------------------------------- checks before any request


def check(ctx: Context, op: GetOp | PutOp | SearchOp | ListNamespacesOp) -> None:
    """Raise a typed error for an op the store refuses; nothing has been sent yet."""
    if isinstance(op, PutOp):
        if not op.namespace:
            raise InvalidNamespaceError("Namespace cannot be empty.")
        if op.namespace[0] == "langgraph":
            raise InvalidNamespaceError(f'Root label for namespace cannot be "langgraph". Got: {op.namespace}')
        if op.ttl is not None:
            raise NotImplementedError("TTL is not supported by MemosdStore: memosd does not expire memories; "
                                      "put with ttl=None")
        ctx.codec.encode_for_write(op.namespace)
    elif isinstance(op, SearchOp):
        _check_page(op.limit, op.offset)
        filtering.check_filter(op.filter)
        if op.query is not None and not isinstance(op.query, str):
            raise InvalidFilterError(f"query must be a string, not {type(op.query).__name__}")
    elif isinstance(op, ListNamespacesOp):
        _check_page(op.limit, op.offset)
        if op.max_depth is not None and (not isinstance(op.max_depth, int) or op.max_depth < 1):
            raise InvalidFilterError(f"max_depth must be a positive integer, not {op.max_depth!r}")
        for condition in op.match_conditions or ():
            if condition.match_type not in ("prefix", "suffix"):
                raise InvalidFilterError(f"unsupported namespace match type {condition.match_type!r}")
