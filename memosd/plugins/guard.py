"""Running plugin code at arm's length: a worker thread, a timeout, checked results.

A call that raises, overruns its timeout or returns something malformed raises
:class:`PluginError`; the registry then marks the plugin failed and memosd
stops calling it. A hung call cannot be interrupted in Python, so its worker
(a daemon thread, never joined) is abandoned: it cannot delay shutdown.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

_POLL_S = 0.01
_QUEUE_WAIT_FACTOR = 10
"""A call waits at most this many timeouts for earlier calls before it starts."""


class PluginError(Exception):
    """A plugin failed: raised, hung, or returned a malformed result (message for the operator)."""


class _Task:
    __slots__ = ("fn", "args", "started", "done", "result", "error")

    def __init__(self, fn: Callable, args: tuple) -> None:
        self.fn = fn
        self.args = args
        self.started: float | None = None
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class Worker:
    """One daemon thread running one plugin's calls in order, each under ``timeout_s``."""

    def __init__(self, name: str, timeout_s: float) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.hung = False
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=f"memosd-plugin-{name}", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        while True:
            task = self._queue.get()
            task.started = time.monotonic()
            try:
                task.result = task.fn(*task.args)
            except BaseException as exc:  # noqa: BLE001 - any failure of plugin code is reported, not raised here
                task.error = exc
            task.done.set()

    def call(self, fn: Callable, *args: Any) -> Any:
        """Run ``fn(*args)`` on the worker; the timeout counts from when the call starts running."""
        if self.hung:
            raise PluginError(f"{self.name} hung earlier (over {self.timeout_s:g}s) and is bypassed")
        task = _Task(fn, args)
        self._queue.put(task)
        queued_until = time.monotonic() + _QUEUE_WAIT_FACTOR * self.timeout_s
        while not task.done.wait(_POLL_S if task.started is None else self._remaining(task)):
            now = time.monotonic()
            if task.started is None and self.hung:
                # The call ahead of this one hung (its caller gave up): this one would never start.
                raise PluginError(f"{self.name} hung (over {self.timeout_s:g}s) and is bypassed")
            if task.started is None and now < queued_until:
                continue
            if task.started is not None and now < task.started + self.timeout_s:
                continue
            self.hung = True
            raise PluginError(f"{self.name} did not answer within {self.timeout_s:g}s")
        if task.error is not None:
            raise PluginError(f"{self.name} raised {type(task.error).__name__}: {task.error}") from task.error
        return task.result

    def _remaining(self, task: _Task) -> float:
        return max(0.0, task.started + self.timeout_s - time.monotonic())


def check_vectors(out: Any, count: int, dim: int, who: str) -> np.ndarray:
    """Validate an encoder's output: float32 ndarray (count, dim), finite, rows of norm 1 or 0."""
    if not isinstance(out, np.ndarray):
        raise PluginError(f"{who} returned {type(out).__name__}, not a numpy array")
    if out.dtype != np.float32:
        raise PluginError(f"{who} returned dtype {out.dtype}, not float32")
    if out.shape != (count, dim):
        raise PluginError(f"{who} returned shape {out.shape}, expected {(count, dim)}")
    if count == 1:
        # One row (every recall's query): its sum of squares is finite only if every value is, and gives
        # the norm, in one numpy call instead of a dozen. A doubtful row takes the checks below.
        squares = float(out[0] @ out[0])
        if math.isfinite(squares) and (squares == 0.0 or abs(math.sqrt(squares) - 1.0) < 1e-3):
            return np.ascontiguousarray(out)
    if not np.isfinite(out).all():
        raise PluginError(f"{who} returned non-finite values")
    norms = np.linalg.norm(out, axis=1)
    if not np.all((np.abs(norms - 1.0) < 1e-3) | (norms == 0.0)):
        raise PluginError(f"{who} returned rows that are not L2-normalised")
    return np.ascontiguousarray(out)


def check_search(out: Any, k: int, who: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate a backend's search result: (keys int, scores finite), equal lengths, at most ``k``."""
    try:
        keys, scores = out
        keys = np.asarray(keys, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise PluginError(f"{who} returned a malformed search result: {exc}") from None
    if keys.ndim != 1 or keys.shape != scores.shape or len(keys) > k:
        raise PluginError(f"{who} returned keys {keys.shape} and scores {scores.shape} for k={k}")
    if not np.isfinite(scores).all():
        raise PluginError(f"{who} returned non-finite scores")
    return keys, scores


def batch_to_add(keys: Any, vectors: Any, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A backend's ``add`` arguments as int64 keys and contiguous float32 rows, a key repeated within the
    batch keeping its last vector (the Protocol's "existing keys are replaced", applied in order).

    For backend authors: raises ValueError for negative keys or a shape that is not (len(keys), dim).
    """
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(keys), dim)
    if len(keys) and (keys < 0).any():
        raise ValueError("keys must be non-negative")
    _, last = np.unique(keys[::-1], return_index=True)
    if len(last) != len(keys):
        pick = np.sort(len(keys) - 1 - last)
        keys, vectors = keys[pick], vectors[pick]
    return keys, vectors
