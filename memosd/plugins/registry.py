"""Discovering and loading plugins, each under its own guard, and keeping their status.

Only the plugins the configuration selects are imported; the others are listed
as ``disabled``. A selected plugin that fails to import, raises, hangs or
returns malformed results is marked ``failed`` (with its error, logged) and
memosd goes on with its defaults: no dense channel for an encoder, the built-in
numpy backend for a backend.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import numpy as np

from memosd_client.protocol.messages import PluginInfo

from ..config import PluginsConfig
from ..logs import get_logger
from .api import BACKENDS, ENCODERS, GROUPS, POLICIES
from .builtin import NumpyBackend
from .guard import PluginError, Worker, check_search, check_vectors

log = get_logger("memosd.plugins")

BUILTINS = {
    (ENCODERS, "hash-dense"): "memosd.plugins.builtin:HashDenseEncoder",
    (BACKENDS, "numpy"): "memosd.plugins.builtin:NumpyBackend",
    (POLICIES, "extractive"): "memosd.tiers.extractive:ExtractivePolicy",
}
"""memosd's own plugins, also declared as entry points in its pyproject; listed here so a stale
install (entry points not regenerated) still finds them."""

PROBE_TEXTS = ["memosd plugin probe: the quick brown fox", "a second, different probe text"]


class Record:
    """Mutable status of one plugin; ``info()`` snapshots it for the protocol."""

    def __init__(self, name: str, group: str, target: str, version: str = "", status: str = "disabled"):
        self.name, self.group, self.target, self.version = name, group, target, version
        self.status = status
        self.error: str | None = None
        self._lock = threading.Lock()

    def fail(self, error: str) -> None:
        """Mark failed (once; the first error is the one reported) and log it."""
        with self._lock:
            if self.status == "failed":
                return
            self.status, self.error = "failed", error
        log.error("plugin failed; bypassed", plugin=self.name, group=self.group, error=error)

    @property
    def ok(self) -> bool:
        return self.status == "loaded"

    def info(self) -> PluginInfo:
        return PluginInfo(name=self.name, group=self.group, status=self.status, version=self.version,
                          error=self.error, target=self.target)


class GuardedEncoder:
    """A loaded encoder whose every call runs on its worker, under the timeout, with checked output."""

    def __init__(self, encoder: Any, record: Record, worker: Worker):
        self.record = record
        self.name, self.version, self.dim = encoder.name, encoder.version, encoder.dim
        self._encoder = encoder
        self._worker = worker
        self._encode_query = getattr(encoder, "encode_query", None) or encoder.encode
        """Asymmetric encoders embed queries differently from the memories they search."""

    @property
    def identity(self) -> str:
        """``name/version/dim``: what stored vectors are tagged with."""
        return f"{self.name}/{self.version}/{self.dim}"

    @property
    def ok(self) -> bool:
        return self.record.ok

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of memories' ``texts``; raises PluginError (and marks the encoder failed) on any misbehaviour."""
        return self._call(self._encoder.encode, texts)

    def encode_query(self, text: str) -> np.ndarray:
        """The vector of one recall query (``encode_query`` when the encoder has one, else ``encode``)."""
        return self._call(self._encode_query, [text])[0]

    def _call(self, fn, texts: Sequence[str]) -> np.ndarray:
        if not self.record.ok:
            raise PluginError(f"{self.name} is bypassed: {self.record.error}")
        try:
            out = self._worker.call(fn, list(texts))
            return check_vectors(out, len(texts), self.dim, f"encoder {self.name}")
        except PluginError as exc:
            self.record.fail(str(exc))
            raise


class GuardedBackend:
    """One namespace's vector backend, called through its plugin's worker with checked results."""

    def __init__(self, backend: Any, record: Record, worker: Worker | None):
        self.record = record
        self._backend = backend
        self._worker = worker

    @property
    def ok(self) -> bool:
        return self.record.ok

    def _call(self, fn, *args):
        if not self.record.ok:
            raise PluginError(f"backend {self.record.name} is bypassed: {self.record.error}")
        try:
            # The built-in backend is memosd's own code: called directly, without a thread hop.
            return fn(*args) if self._worker is None else self._worker.call(fn, *args)
        except PluginError as exc:
            self.record.fail(str(exc))
            raise
        except Exception as exc:
            self.record.fail(f"raised {type(exc).__name__}: {exc}")
            raise PluginError(str(exc)) from exc

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self._call(self._backend.add, np.asarray(keys, dtype=np.int64), vectors)

    def remove(self, keys: np.ndarray) -> None:
        self._call(self._backend.remove, np.asarray(keys, dtype=np.int64))

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        out = self._call(self._backend.search, vector, k, allowed)
        try:
            return check_search(out, k, f"backend {self.record.name}")
        except PluginError as exc:
            self.record.fail(str(exc))
            raise

    def __len__(self) -> int:
        return int(self._call(len, self._backend))

    @property
    def persists(self) -> bool:
        """The backend can save itself and be opened again (its optional ``save`` and ``load``)."""
        return callable(getattr(self._backend, "save", None)) and callable(getattr(self._backend, "load", None))

    def save(self, directory: Path) -> None:
        self._call(self._backend.save, str(directory))

    def save_in_child(self, directory: Path) -> None:
        """``save`` called directly, in a process forked for a snapshot (engine/checkpoint.py): the
        plugin's worker thread does not exist there, and no call was running in the parent at the fork
        (they are all made from the event loop, which forked)."""
        self._backend.save(str(directory))

    def load(self, directory: Path) -> bool:
        """Replace the backend's contents with a save's; False when it found nothing usable there."""
        return self._call(self._backend.load, str(directory)) is True

    @property
    def nbytes(self) -> int:
        try:
            return int(self._backend.nbytes)
        except Exception:  # noqa: BLE001 - a size estimate is not worth failing a plugin over
            return 0


class PluginRegistry:
    """Every discovered plugin with its status; the loaded encoder and backend factory."""

    def __init__(self, config: PluginsConfig):
        self.config = config
        self.timeout_s = max(float(config.timeout_s), 0.01)
        self.records: dict[tuple[str, str], Record] = {}
        self._entry_points: dict[tuple[str, str], EntryPoint] = {}
        self.encoder: GuardedEncoder | None = None
        self._backend_factory: Any = NumpyBackend
        self._backend_record: Record | None = None
        self._backend_worker: Worker | None = None

    # ------------------------------------------------------------------ discovery and loading

    def discover(self) -> None:
        """List installed plugins (nothing is imported)."""
        for group in GROUPS:
            try:
                found = list(entry_points(group=group))
            except Exception as exc:  # noqa: BLE001 - broken metadata of one distribution must not stop the daemon
                log.error("cannot list plugins", group=group, error=repr(exc))
                found = []
            for ep in found:
                version = ep.dist.version if ep.dist is not None else ""
                self._add(group, ep, version)
        for (group, name), target in BUILTINS.items():
            if (group, name) not in self._entry_points:
                self._add(group, EntryPoint(name=name, value=target, group=group), "builtin")

    def _add(self, group: str, ep: EntryPoint, version: str) -> None:
        key = (group, ep.name)
        if key in self._entry_points:
            log.warning("two plugins with one name; the first is used", group=group, plugin=ep.name,
                        ignored=ep.value)
            return
        self._entry_points[key] = ep
        self.records[key] = Record(ep.name, group, ep.value, version)

    def load(self) -> None:
        """Discover, then load the selected encoder and backend (each under its own guard)."""
        self.discover()
        if self.config.backend:
            self._load_backend(self.config.backend)
        if self.config.encoder:
            self.encoder = self._load_encoder(self.config.encoder)

    def _selected(self, group: str, name: str) -> tuple[Record, EntryPoint | None]:
        record = self.records.get((group, name))
        if record is None:
            record = self.records[(group, name)] = Record(name, group, "")
            record.fail(f"no plugin named {name!r} is installed in {group}")
            return record, None
        return record, self._entry_points[(group, name)]

    def _load_encoder(self, name: str) -> GuardedEncoder | None:
        record, ep = self._selected(ENCODERS, name)
        if ep is None:
            return None
        worker = Worker(f"encoder-{name}", self.timeout_s)
        try:
            encoder = worker.call(lambda: ep.load()())
            _check_identity(encoder, name)
            record.version = str(encoder.version)
            record.status = "loaded"
            guarded = GuardedEncoder(encoder, record, worker)
            guarded.encode(PROBE_TEXTS)  # shapes, dtype, norms and timing, before any memory depends on it
            guarded.encode_query(PROBE_TEXTS[0])
        except PluginError as exc:
            record.fail(f"load: {exc}")
            return None
        if not record.ok:
            return None
        log.info("encoder loaded", plugin=name, identity=guarded.identity)
        return guarded

    def _load_backend(self, name: str) -> None:
        record, ep = self._selected(BACKENDS, name)
        if ep is None:
            return
        builtin = ep.value == BUILTINS.get((BACKENDS, name))
        worker = None if builtin else Worker(f"backend-{name}", self.timeout_s)
        try:
            factory = ep.load() if worker is None else worker.call(ep.load)
            record.status = "loaded"
            self._backend_record, self._backend_worker, self._backend_factory = record, worker, factory
            _probe_backend(self.backend(4), 4)
        except PluginError as exc:
            record.fail(f"load: {exc}")
        except Exception as exc:  # noqa: BLE001 - the built-in path imports without a worker
            record.fail(f"load: {type(exc).__name__}: {exc}")
        if not record.ok:
            self._backend_record, self._backend_worker, self._backend_factory = None, None, NumpyBackend
            log.warning("using the built-in numpy backend instead", failed=name)

    def use_builtin(self, group: str, name: str) -> None:
        """Show a built-in the daemon uses without loading it through the registry as loaded."""
        record = self.records.get((group, name))
        if record is not None:
            record.status = "loaded"

    def load_policy(self, name: str, timeout_s: float):
        """(policy, its worker) for a memosd.policies plugin, or (None, None) when it cannot be used.

        The policy is constructed on its own worker thread under ``timeout_s``; the caller runs
        ``consolidate`` on the same worker and falls back to the built-in policy on any failure.
        """
        record, ep = self._selected(POLICIES, name)
        if ep is None:
            return None, None
        worker = Worker(f"policy-{name}", timeout_s)
        try:
            policy = worker.call(lambda: ep.load()())
            for attr in ("name", "version"):
                if not isinstance(getattr(policy, attr, None), str):
                    raise PluginError(f"policy {name} has no valid {attr!r} (str)")
            if not callable(getattr(policy, "consolidate", None)):
                raise PluginError(f"policy {name} has no consolidate(page) method")
        except PluginError as exc:
            record.fail(f"load: {exc}")
            return None, None
        record.version, record.status = str(policy.version), "loaded"
        log.info("consolidation policy loaded", plugin=name, version=record.version)
        return policy, worker

    # ------------------------------------------------------------------ use

    def backend(self, dim: int) -> GuardedBackend:
        """A new, empty backend for one namespace (the configured one, or numpy when it failed)."""
        if self._backend_record is None or not self._backend_record.ok:
            return GuardedBackend(NumpyBackend(dim), _BUILTIN_RECORD, None)
        worker = self._backend_worker
        try:
            made = self._backend_factory(dim) if worker is None else worker.call(self._backend_factory, dim)
        except Exception as exc:  # noqa: BLE001 - PluginError or the factory's own error
            self._backend_record.fail(f"create: {exc}")
            return GuardedBackend(NumpyBackend(dim), _BUILTIN_RECORD, None)
        return GuardedBackend(made, self._backend_record, worker)

    def infos(self) -> list[PluginInfo]:
        """Status of every known plugin, by group then name."""
        return [self.records[key].info() for key in sorted(self.records)]

    def errors(self) -> list[PluginInfo]:
        return [info for info in self.infos() if info.status == "failed"]


_BUILTIN_RECORD = Record("numpy", BACKENDS, BUILTINS[(BACKENDS, "numpy")], "builtin", "loaded")
"""Status holder of the fallback backend (never shown: it only stands in for a failed one)."""


def _check_identity(encoder: Any, name: str) -> None:
    for attr, kind in (("name", str), ("version", str), ("dim", int)):
        value = getattr(encoder, attr, None)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise PluginError(f"encoder {name} has no valid {attr!r} ({kind.__name__})")
    if not 0 < encoder.dim <= 65536:
        raise PluginError(f"encoder {name} has dimension {encoder.dim}, outside 1..65536")
    if "/" in encoder.name or "/" in encoder.version:
        raise PluginError(f"encoder {name}: name and version must not contain '/'")


def _probe_backend(backend: GuardedBackend, dim: int) -> None:
    """Add, search and remove two vectors: a backend that cannot do this is not used."""
    vectors = np.eye(2, dim, dtype=np.float32)
    backend.add(np.array([0, 1]), vectors)
    keys, _ = backend.search(vectors[1], 1, None)
    if keys.tolist() != [1]:
        backend.record.fail(f"probe: search returned keys {keys.tolist()}, expected [1]")
        raise PluginError("probe failed")
    backend.remove(np.array([0, 1]))
    if len(backend) != 0:
        backend.record.fail("probe: vectors remained after remove")
        raise PluginError("probe failed")
