"""Running consolidation policies off the request path, with a fallback that always answers.

The built-in ``extractive`` policy runs in a separate process (a one-worker
process pool): it is CPU-bound Python, and on the daemon's own interpreter it
would hold the GIL against requests. A plugin policy (an LLM client, say)
mostly waits on I/O and runs on its own guarded thread under
``tiers.policy_timeout_s``; when it raises, hangs or returns something invalid
the page is consolidated by the built-in policy instead, and the failure is
counted and logged.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import msgspec

from ..logs import get_logger
from ..plugins.api import Consolidation, PageView
from ..plugins.guard import PluginError, Worker
from .extractive import ExtractivePolicy, consolidate_pages

log = get_logger("memosd.tiers.policy")

_PAGES = msgspec.msgpack.Decoder(list[PageView])
_RESULTS = msgspec.msgpack.Decoder(list[Consolidation])
_ENCODER = msgspec.msgpack.Encoder()


def _consolidate_packed(pages: bytes) -> bytes:
    """consolidate_pages across the process boundary as MessagePack. Pickle would rebuild every page,
    turn and fact object in Python on the daemon's side, holding its interpreter lock for tens of
    milliseconds per batch (a 64-page batch's results: 27 ms to unpickle, 1.5 ms to decode this way)
    while requests wait for it."""
    return _ENCODER.encode(consolidate_pages(_PAGES.decode(pages)))

CONSOLIDATION_NICE = 15
MAX_SUMMARY = 2000
MAX_FACTS = 256
MAX_FACT_TEXT = 4000
PARENT_CHECK_S = 1.0


def _worker_start(nice: int, parent: int) -> None:
    """Runs first in the consolidation process: lower its priority, and end it once the daemon is gone.

    A daemon killed with SIGKILL (by systemd after a stop timeout, the OOM killer, a crash test) cannot
    shut its pool down, and an idle worker blocked on its queue would otherwise outlive it for good."""
    os.nice(nice)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="memosd-parent-watch", daemon=True).start()


class InvalidConsolidation(ValueError):
    """A policy's answer that memosd will not store."""


def validate(result: object, page: PageView) -> Consolidation:
    """Check a policy's answer against the page: types, sizes, and provenance among the page's turns."""
    if not isinstance(result, Consolidation):
        raise InvalidConsolidation(f"expected a Consolidation, got {type(result).__name__}")
    ids = {turn.id for turn in page.turns}
    if not isinstance(result.summary, str) or len(result.summary) > MAX_SUMMARY:
        raise InvalidConsolidation(f"summary must be a str of at most {MAX_SUMMARY} characters")
    if len(result.facts) > MAX_FACTS:
        raise InvalidConsolidation(f"{len(result.facts)} facts; at most {MAX_FACTS}")
    for fact in result.facts:
        if not isinstance(fact.text, str) or not fact.text or len(fact.text) > MAX_FACT_TEXT:
            raise InvalidConsolidation("a fact's text must be a non-empty str of at most 4000 characters")
        if not fact.sources or not set(fact.sources) <= ids:
            raise InvalidConsolidation(f"fact {fact.text[:40]!r} cites {list(fact.sources)}, not turns of the page")
    for entity in result.entities:
        if not isinstance(entity.name, str) or not set(entity.sources) <= ids:
            raise InvalidConsolidation(f"entity {entity.name!r} cites turns outside the page")
    if not all(isinstance(k, str) for k in result.keywords):
        raise InvalidConsolidation("keywords must be strings")
    return result


class PolicyRunner:
    """Consolidates pages with the configured policy, falling back to the built-in one."""

    def __init__(self, name: str, registry=None, timeout_s: float = 180.0):
        self.builtin = ExtractivePolicy()
        self.builtin_name = f"{self.builtin.name}/{self.builtin.version}"
        self.plugin = None
        self.plugin_name = ""
        self._worker: Worker | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._pool_failures = 0
        if name and name != self.builtin.name and registry is not None:
            self.plugin, self._worker = registry.load_policy(name, timeout_s)
            if self.plugin is not None:
                self.plugin_name = f"{self.plugin.name}/{self.plugin.version}"
        if registry is not None:
            registry.use_builtin("memosd.policies", self.builtin.name)  # the fallback is always in use

    @property
    def name(self) -> str:
        return self.plugin_name or self.builtin_name

    async def consolidate(self, page: PageView) -> tuple[Consolidation, str, bool]:
        """(result, name/version of the policy that produced it, whether the configured policy failed)."""
        if self.plugin is not None and self._worker is not None:
            try:
                result = await asyncio.to_thread(self._worker.call, self.plugin.consolidate, page)
                return validate(result, page), self.plugin_name, False
            except (PluginError, InvalidConsolidation, Exception) as exc:  # noqa: BLE001 - any plugin failure
                log.warning("consolidation policy failed; built-in policy used", policy=self.plugin_name,
                            page=page.page_id, error=str(exc)[:500])
        return validate(await self._builtin(page), page), self.builtin_name, self.plugin is not None

    async def consolidate_many(self, pages: list[PageView]) -> list[tuple[Consolidation, str, bool]]:
        """:meth:`consolidate` for each page, in order. The built-in policy takes the whole batch in one
        call to its process (a call per page costs about as much as consolidating a small page)."""
        if self.plugin is not None and self._worker is not None:
            return list(await asyncio.gather(*(self.consolidate(page) for page in pages)))
        results = await self._builtin_many(pages)
        return [(validate(result, page), self.builtin_name, False) for result, page in zip(results, pages)]

    async def _builtin(self, page: PageView) -> Consolidation:
        return (await self._builtin_many([page]))[0]

    async def _builtin_many(self, pages: list[PageView]) -> list[Consolidation]:
        loop = asyncio.get_running_loop()
        if self._pool_failures >= 3:
            return await asyncio.to_thread(consolidate_pages, pages)
        if self._pool is None:
            # Niced: on a small machine the consolidation process must lose every race for a core against
            # the daemon's request path (the scheduler must never slow requests down).
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_worker_start, initargs=(CONSOLIDATION_NICE, os.getpid()))
        try:
            packed = await loop.run_in_executor(self._pool, _consolidate_packed, _ENCODER.encode(pages))
            return _RESULTS.decode(packed)
        except (BrokenProcessPool, RuntimeError, OSError) as exc:
            # The worker process died (OOM killer, say) or cannot be started here: this batch goes on in a
            # thread; a new pool is tried next time, and after three failures threads are used for good.
            self._pool_failures += 1
            self._pool = None
            log.warning("consolidation process failed; using a thread", error=repr(exc)[:300],
                        failures=self._pool_failures)
            return await asyncio.to_thread(consolidate_pages, pages)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
