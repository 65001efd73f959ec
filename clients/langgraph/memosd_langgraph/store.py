"""``MemosdStore``: LangGraph's ``BaseStore`` kept in a memosd daemon."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchOp,
    validate_op_namespace,
)
from memosd_client import AsyncClient, Client, CurveKeys

from . import operations, records
from .driver import Plan, run_async, run_sync
from .errors import InvalidKeyError
from .naming import NamespaceCodec
from .operations import Context


class MemosdStore(BaseStore):
    """A LangGraph store whose items live in memosd.

    Each LangGraph namespace is its own memosd namespace (``<prefix>:<labels>``),
    each item the current version of one memosd memory: the value is kept
    exactly in the memory's meta, the text memosd ranks is taken from the
    value's ``fields`` (``["$"]``: the whole value as JSON), the key is an
    exact-match tag. Overwrites supersede (memosd keeps the history); deletes
    purge. Search ranks with memosd's hybrid retrieval. See the README for the
    whole mapping.

    Args:
        endpoint: memosd's agent endpoint (default: the local ipc socket).
        prefix: first part of every memosd namespace this store uses; stores with
            different prefixes on one daemon do not see each other.
        fields: JSON paths of the value whose text memosd indexes, as LangGraph's
            ``IndexConfig["fields"]``; a put's ``index`` argument overrides it.
        timeout, retries, curve: passed to the memosd clients.

    The sync methods use one memosd client per thread, the async ones one per
    event loop. TTLs are not supported (``supports_ttl`` is False): memosd does
    not expire memories.
    """

    supports_ttl = False

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        prefix: str = "lg",
        fields: Sequence[str] | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        curve: CurveKeys | None = None,
    ) -> None:
        fields = ["$"] if fields is None else list(fields)
        if not fields or not all(isinstance(f, str) and f for f in fields):
            raise ValueError(f"fields must be a non-empty list of JSON paths, not {fields!r}")
        self.endpoint = endpoint
        self._ctx = Context(codec=NamespaceCodec(prefix), fields=fields)
        self._client_args: dict[str, Any] = {"timeout": timeout, "retries": retries, "curve": curve}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sync_clients: list[Client] = []
        self._async_clients: dict[asyncio.AbstractEventLoop, AsyncClient] = {}
        self._closed = False

    # ------------------------------------------------------------------ clients

    def _client(self) -> Client:
        if self._closed:
            raise RuntimeError("MemosdStore is closed")
        client = getattr(self._local, "client", None)
        if client is None:
            client = Client(self.endpoint, **self._client_args)
            self._local.client = client
            with self._lock:
                self._sync_clients.append(client)
        return client

    def _aclient(self) -> AsyncClient:
        if self._closed:
            raise RuntimeError("MemosdStore is closed")
        loop = asyncio.get_running_loop()
        with self._lock:
            for old in [lp for lp in self._async_clients if lp.is_closed()]:
                self._async_clients.pop(old)._sock.close(linger=0)  # its loop is gone: nothing can await it
            client = self._async_clients.get(loop)
            if client is None:
                client = self._async_clients[loop] = AsyncClient(self.endpoint, **self._client_args)
        return client

    def close(self) -> None:
        """Close the sync clients (and async ones whose loop has ended)."""
        self._closed = True
        with self._lock:
            clients, self._sync_clients = self._sync_clients, []
            loops = list(self._async_clients)
        for client in clients:
            client.close()
        for loop in loops:
            if loop.is_closed():
                self._async_clients.pop(loop)._sock.close(linger=0)

    async def aclose(self) -> None:
        """Close the async client of the running loop, then everything :meth:`close` closes."""
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()
        self.close()

    def __enter__(self) -> "MemosdStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "MemosdStore":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ batches

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the ops: reads see the store as it was before the batch, then the writes apply
        (the last write of a key wins), as in LangGraph's ``InMemoryStore``."""
        ops, reads, writes = self._prepare(ops)
        client = self._client()
        results: list[Result] = [None] * len(ops)
        for i in reads:
            results[i] = run_sync(self._plan(ops[i]), client)
        for i in writes:
            run_sync(self._plan(ops[i]), client)
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """As :meth:`batch`, with the reads sent concurrently, then the writes."""
        ops, reads, writes = self._prepare(ops)
        client = self._aclient()
        results: list[Result] = [None] * len(ops)
        answers = await asyncio.gather(*(run_async(self._plan(ops[i]), client) for i in reads))
        for i, answer in zip(reads, answers):
            results[i] = answer
        await asyncio.gather(*(run_async(self._plan(ops[i]), client) for i in writes))
        return results

    def _plan(self, op: Op) -> Plan[Any]:
        if isinstance(op, GetOp):
            return operations.get(self._ctx, op)
        if isinstance(op, SearchOp):
            return operations.search(self._ctx, op)
        if isinstance(op, ListNamespacesOp):
            return operations.list_namespaces(self._ctx, op)
        return operations.put(self._ctx, op)

    def _prepare(self, ops: Iterable[Op]) -> tuple[list[Op], list[int], list[int]]:
        """Check every op before anything is sent, so a bad op fails the batch with nothing written."""
        checked: list[Op] = [self._check(op) for op in ops]
        reads = [i for i, op in enumerate(checked) if not isinstance(op, PutOp)]
        last_write: dict[tuple[tuple[str, ...], str], int] = {}
        for i, op in enumerate(checked):
            if isinstance(op, PutOp):
                last_write[(op.namespace, op.key)] = i
        return checked, reads, sorted(last_write.values())

    def _check(self, op: Any) -> Op:
        if not isinstance(op, (GetOp, PutOp, SearchOp, ListNamespacesOp)):
            raise ValueError(f"Unknown operation type: {type(op)}")
        if isinstance(op, (GetOp, PutOp)):
            if not isinstance(op.namespace, (tuple, list)):
                raise InvalidNamespaceError(f"a namespace is a tuple of strings, not {op.namespace!r}")
            op = op._replace(namespace=tuple(op.namespace))
            if not isinstance(op.key, str):
                raise InvalidKeyError(f"an item key must be a string, not {type(op.key).__name__}")
        if isinstance(op, SearchOp):
            if not isinstance(op.namespace_prefix, (tuple, list)):
                raise InvalidNamespaceError(f"a namespace prefix is a tuple of strings, not {op.namespace_prefix!r}")
            op = op._replace(namespace_prefix=tuple(op.namespace_prefix))
        validate_op_namespace(op)
        operations.check(self._ctx, op)
        if isinstance(op, PutOp) and op.value is not None:
            value = records.normalize_value(op.value)
            records.index_text(value, op.key, op.index, self._ctx.fields)
        return op
