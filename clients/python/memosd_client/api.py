"""The operations of the client library, written once for the sync and asyncio clients.

Each method builds a :class:`Call` and hands it to ``self._exec``: the sync
client returns the unwrapped result, the asyncio client returns an awaitable of
it. So ``client.recall("x")`` and ``await aclient.recall("x")`` take the same
arguments and give the same typed results.
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .protocol import messages as m
from .protocol.errors import InvalidArgumentError, NotFoundError


def new_idempotency_key() -> str:
    """A random key that makes a retried write safe (the daemon stores it with the memory)."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Call:
    op: str
    args: m.Struct
    namespace: str | None
    unwrap: Callable[[Any], Any] = lambda result: result


def _vector_bytes(vector: Any) -> bytes:
    arr = np.ascontiguousarray(np.asarray(vector, dtype="<f4"))
    if arr.ndim != 1:
        raise InvalidArgumentError("vector must be one-dimensional")
    return arr.tobytes()


def _first(result: m.GetResult, memory_id: int) -> m.Memory:
    if not result.memories:
        raise NotFoundError(f"no memory {memory_id}")
    return result.memories[0]


class Api(ABC):
    """Operations shared by :class:`memosd_client.Client` and :class:`memosd_client.AsyncClient`."""

    namespace: str | None
    auto_idempotency: bool

    @abstractmethod
    def _exec(self, call: Call) -> Any:
        """Send the call; the sync client returns its result, the async client an awaitable."""

    def _ns(self, namespace: str | None) -> str | None:
        return namespace if namespace is not None else self.namespace

    def _key(self, key: str | None) -> str | None:
        return key if key is not None or not self.auto_idempotency else new_idempotency_key()

    # ------------------------------------------------------------------ handshake / admin

    def hello(self, client: str | None = None):
        """Handshake: the daemon's protocol version, capabilities, limits and encoder."""
        return self._exec(Call("hello", m.HelloArgs(client=client), None))

    def stats(self, namespace: str | None = None, *, all_namespaces: bool = False):
        """Counts and sizes of the namespace (or of every namespace with ``all_namespaces``)."""
        ns = None if all_namespaces else self._ns(namespace)
        return self._exec(Call("stats", m.StatsArgs(), ns))

    def page(self, page_id: int | None = None, *, memory: int | None = None, namespace: str | None = None):
        """One page of the namespace's memory tiers (by page id, or the page holding ``memory``):
        members, heat, residency, summary and facts."""
        return self._exec(Call("page", m.PageArgs(page=page_id, memory=memory), self._ns(namespace)))

    def entity(self, name: str, *, limit: int = 20, namespace: str | None = None):
        """An entity's profile in long-term memory: the pages and turns naming it, and facts about it."""
        return self._exec(Call("entity", m.EntityArgs(name=name, limit=limit), self._ns(namespace)))

    # ------------------------------------------------------------------ writes

    def remember(
        self,
        text: str,
        *,
        meta: dict[str, Any] | None = None,
        tags: Sequence[str] = (),
        event_time: float | None = None,
        session: str | None = None,
        source: str | None = None,
        idempotency_key: str | None = None,
        namespace: str | None = None,
    ):
        """Store one memory; returns its id once it is durable."""
        item = m.MemoryIn(text=text, meta=meta or {}, tags=list(tags), event_time=event_time,
                          session=session, source=source, idempotency_key=self._key(idempotency_key))
        return self._exec(Call("remember", m.RememberArgs(items=[item]), self._ns(namespace),
                               lambda r: r.ids[0]))

    def remember_many(self, items: Iterable[m.MemoryIn | dict[str, Any] | str], *, namespace: str | None = None):
        """Store a batch in one durable commit; returns a :class:`RememberResult` (ids in input order)."""
        built = []
        for item in items:
            if isinstance(item, str):
                item = m.MemoryIn(text=item)
            elif isinstance(item, dict):
                item = m.MemoryIn(**item)
            if item.idempotency_key is None and self.auto_idempotency:
                item = m.MemoryIn(**{**{f: getattr(item, f) for f in item.__struct_fields__},
                                     "idempotency_key": new_idempotency_key()})
            built.append(item)
        return self._exec(Call("remember", m.RememberArgs(items=built), self._ns(namespace)))

    def update(
        self,
        memory_id: int,
        text: str | None = None,
        *,
        meta: dict[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        event_time: float | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
        namespace: str | None = None,
    ):
        """Supersede a memory; returns the new version's id. The old version keeps its history."""
        args = m.UpdateArgs(id=memory_id, text=text, meta=meta, tags=None if tags is None else list(tags),
                            event_time=event_time, reason=reason, idempotency_key=self._key(idempotency_key))
        return self._exec(Call("update", args, self._ns(namespace), lambda r: r.id))

    supersede = update

    def forget(self, ids: int | Sequence[int], *, namespace: str | None = None):
        """Soft delete (reversible): returns a :class:`ForgetResult`."""
        ids = [ids] if isinstance(ids, int) else list(ids)
        return self._exec(Call("forget", m.IdsArgs(ids=ids), self._ns(namespace)))

    def unforget(self, ids: int | Sequence[int], *, namespace: str | None = None):
        """Undo :meth:`forget`."""
        ids = [ids] if isinstance(ids, int) else list(ids)
        return self._exec(Call("unforget", m.IdsArgs(ids=ids), self._ns(namespace)))

    def purge(self, ids: int | Sequence[int], *, namespace: str | None = None):
        """Hard delete every version of the given memories; irreversible."""
        ids = [ids] if isinstance(ids, int) else list(ids)
        return self._exec(Call("purge", m.PurgeArgs(ids=ids), self._ns(namespace)))

    def purge_namespace(self, *, namespace: str | None = None):
        """Hard delete the whole namespace; irreversible. Returns the number of versions removed."""
        return self._exec(Call("purge", m.PurgeArgs(all=True), self._ns(namespace), lambda r: r.purged))

    def import_batch(self, memories: Sequence[m.Memory], *, namespace: str | None = None):
        """Store exported versions keeping their ids (existing ids are skipped)."""
        return self._exec(Call("import", m.ImportArgs(memories=list(memories)), self._ns(namespace)))

    # ------------------------------------------------------------------ reads

    def get(self, memory_id: int, *, namespace: str | None = None):
        """One memory version by id; raises NotFoundError when absent from the namespace."""
        return self._exec(Call("get", m.GetArgs(ids=[memory_id]), self._ns(namespace),
                               lambda r: _first(r, memory_id)))

    def get_many(self, ids: Sequence[int], *, namespace: str | None = None):
        """Several versions by id: a :class:`GetResult` with ``memories`` and ``missing``."""
        return self._exec(Call("get", m.GetArgs(ids=list(ids)), self._ns(namespace)))

    def history(self, memory_id: int, *, namespace: str | None = None):
        """Every version of a memory, oldest first."""
        return self._exec(Call("history", m.HistoryArgs(id=memory_id), self._ns(namespace),
                               lambda r: r.versions))

    def list(
        self,
        *,
        cursor: int | None = None,
        limit: int = 100,
        filters: m.Filters | None = None,
        include_forgotten: bool = False,
        include_superseded: bool = False,
        namespace: str | None = None,
    ):
        """One page of memories in id order: a :class:`ListResult` with ``next_cursor``."""
        args = m.ListArgs(cursor=cursor, limit=limit, filters=filters or m.Filters(),
                          include_forgotten=include_forgotten, include_superseded=include_superseded)
        return self._exec(Call("list", args, self._ns(namespace)))

    def recall(
        self,
        query: str | None = None,
        *,
        vector: Any = None,
        k: int = 10,
        filters: m.Filters | None = None,
        as_of: float | None = None,
        include_forgotten: bool = False,
        namespace: str | None = None,
    ):
        """Ranked :class:`RecallHit` list for a query text (or a vector in the encoder's space)."""
        args = m.RecallArgs(query=query, vector=None if vector is None else _vector_bytes(vector), k=k,
                            filters=filters or m.Filters(), as_of=as_of, include_forgotten=include_forgotten)
        return self._exec(Call("recall", args, self._ns(namespace), lambda r: r.hits))

    def encode(self, texts: Sequence[str]):
        """Vectors of ``texts`` in the daemon encoder's space, as a float32 array (len(texts), dim)."""
        def unwrap(result: m.EncodeResult):
            if not result.vectors:
                return np.zeros((0, result.dim), dtype=np.float32)
            return np.frombuffer(b"".join(result.vectors), dtype="<f4").reshape(len(result.vectors), result.dim)

        return self._exec(Call("encode", m.EncodeArgs(texts=list(texts)), None, unwrap))

    def export_page(self, *, cursor: int | None = None, limit: int = 500, namespace: str | None = None):
        """One page of every stored version (forgotten and superseded included)."""
        return self._exec(Call("export", m.ExportArgs(cursor=cursor, limit=limit), self._ns(namespace)))
