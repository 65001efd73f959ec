"""The ``torch`` vector backend: exact inner-product search with matmul + top-k on a torch device."""

from __future__ import annotations

import os
import threading

import numpy as np
import torch

from memosd.plugins.guard import batch_to_add

from .device import resolve_device

INITIAL_CAPACITY = 1024
"""Rows preallocated for a new namespace; capacity doubles when full and halves when mostly empty."""
CPU_GEMV_ENV = "MEMOSD_TORCH_CPU_GEMV"
"""Environment variable choosing who computes the scores on the CPU: ``numpy`` (default) or ``torch``."""


def _host(array: np.ndarray) -> np.ndarray:
    """``array`` as-is when torch can share its memory, else a copy (torch.from_numpy warns on read-only arrays)."""
    return array if array.flags.writeable and array.flags.c_contiguous else np.array(array, order="C")


class TorchBackend:
    """Exact inner-product search over a growable float32 tensor on a torch device.

    Rows ``0..len-1`` of the device matrix hold the live vectors, compactly:
    replacing a key overwrites its row, removing one moves the last rows into
    the freed ones. Keys are kept both on the device (to apply ``allowed``
    masks there) and on the host (to map result rows back without a transfer).
    The API takes and returns numpy arrays, as the Protocol says.

    ``device``: a ``torch.device`` or a string (``auto``, ``cpu``, ``cuda``,
    ``cuda:N``); default ``$MEMOSD_TORCH_DEVICE``, else ``auto`` (CUDA when
    present). ``cpu_gemv``: on the CPU, compute the query's scores with numpy's
    BLAS over the same memory (``numpy``, default: PyPI's torch CPU builds use
    MKL, whose single-vector product ran at half numpy's speed on the AMD CPUs
    measured, see the README) or with ``torch.mv`` (``torch``); default
    ``$MEMOSD_TORCH_CPU_GEMV``.

    Every method takes an internal lock: memosd calls a plugin backend from one
    worker thread at a time, but a call abandoned after its timeout may still be
    running when the next one starts.
    """

    def __init__(self, dim: int, *, device: torch.device | str | None = None, cpu_gemv: str | None = None) -> None:
        self.dim = int(dim)
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        cpu_gemv = (cpu_gemv or os.environ.get(CPU_GEMV_ENV, "") or "numpy").strip().lower()
        if cpu_gemv not in ("numpy", "torch"):
            raise ValueError(f"{CPU_GEMV_ENV}={cpu_gemv}: expected numpy or torch")
        self.cpu_gemv = cpu_gemv
        self._numpy_gemv = self.device.type == "cpu" and cpu_gemv == "numpy"
        self._lock = threading.RLock()
        self._n = 0
        self._row_of_key = np.full(64, -1, dtype=np.int64)  # -1: key absent
        self._matrix = torch.empty((0, self.dim), dtype=torch.float32, device=self.device)
        self._keys = torch.empty(0, dtype=torch.int64, device=self.device)
        self._keys_host = np.empty(0, dtype=np.int64)
        self._resize(INITIAL_CAPACITY)

    # -- storage -------------------------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Rows allocated on the device."""
        return self._matrix.shape[0]

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes held: the device matrix and keys (GPU memory on CUDA) plus the host-side key maps."""
        return self._matrix.numel() * 4 + self._keys.numel() * 8 + self._keys_host.nbytes + self._row_of_key.nbytes

    def _resize(self, capacity: int) -> None:
        """Reallocate the device buffers to ``capacity`` rows, keeping the live ones."""
        n = self._n
        matrix = torch.empty((capacity, self.dim), dtype=torch.float32, device=self.device)
        keys = torch.empty(capacity, dtype=torch.int64, device=self.device)
        keys_host = np.empty(capacity, dtype=np.int64)
        if n:
            matrix[:n] = self._matrix[:n]
            keys[:n] = self._keys[:n]
            keys_host[:n] = self._keys_host[:n]
        self._matrix, self._keys, self._keys_host = matrix, keys, keys_host

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(_host(array)).to(self.device)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace ``vectors`` under ``keys`` (the last one wins for a repeated key)."""
        keys, vectors = batch_to_add(keys, vectors, self.dim)
        if len(keys) == 0:
            return
        with self._lock:
            top = int(keys.max())
            if top >= len(self._row_of_key):
                grown = np.full(max(top + 1, 2 * len(self._row_of_key)), -1, dtype=np.int64)
                grown[: len(self._row_of_key)] = self._row_of_key
                self._row_of_key = grown
            rows = self._row_of_key[keys]  # fancy indexing: a copy
            new = rows < 0
            count = int(np.count_nonzero(new))
            if self._n + count > self.capacity:
                self._resize(max(2 * self.capacity, self._n + count))
            rows[new] = np.arange(self._n, self._n + count, dtype=np.int64)
            # Device writes first: if they fail (out of GPU memory) the key maps still describe the old state.
            rows_t = self._to_device(rows)
            self._matrix[rows_t] = self._to_device(vectors)
            self._keys[rows_t] = self._to_device(keys)
            self._row_of_key[keys[new]] = rows[new]
            self._keys_host[rows[new]] = keys[new]
            self._n += count

    def remove(self, keys: np.ndarray) -> None:
        """Drop these keys; unknown keys are ignored. The last live rows move into the freed ones."""
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        with self._lock:
            keys = np.unique(keys[(keys >= 0) & (keys < len(self._row_of_key))])
            rows = self._row_of_key[keys]
            keys, rows = keys[rows >= 0], rows[rows >= 0]
            if len(rows) == 0:
                return
            end = self._n - len(rows)
            holes = np.sort(rows[rows < end])  # freed rows inside the new live range
            tail = np.arange(end, self._n, dtype=np.int64)
            movers = tail[~np.isin(tail, rows)]  # live rows past it: as many as there are holes
            if len(holes):
                holes_t, movers_t = self._to_device(holes), self._to_device(movers)
                self._matrix[holes_t] = self._matrix[movers_t]
                self._keys[holes_t] = self._keys[movers_t]
                moved = self._keys_host[movers]
                self._keys_host[holes] = moved
                self._row_of_key[moved] = holes
            self._row_of_key[keys] = -1
            self._n = end
            if self.capacity > 4 * max(end, INITIAL_CAPACITY):
                self._resize(max(2 * end, INITIAL_CAPACITY))  # give device memory back after a mass removal

    # -- search --------------------------------------------------------------------------------------------

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` (keys, scores) by inner product, scores descending, equal scores by key ascending.

        ``allowed`` is a bool mask indexed by key, applied where the scores are computed; keys
        past its end or False in it are never returned.
        """
        query = np.asarray(vector, dtype=np.float32).reshape(self.dim)
        empty = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))
        with self._lock:
            n = self._n
            if k <= 0 or n == 0:
                return empty
            if allowed is not None:
                allowed = np.asarray(allowed, dtype=bool).reshape(-1)
                if len(allowed) == 0:
                    return empty
            if self._numpy_gemv:
                scores, ok = self._scores_numpy(n, query, allowed)
            else:
                scores, ok = self._scores_torch(n, query, allowed)
            return self._top(scores, k, ok)

    def _scores_torch(self, n: int, query: np.ndarray, allowed: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Scores of rows ``0..n-1`` (disallowed ones at -inf) and the allowed-row mask, computed on the device."""
        scores = torch.mv(self._matrix[:n], self._to_device(query))
        if allowed is None:
            return scores, None
        keys = self._keys[:n]
        ok = (keys < len(allowed)) & self._to_device(allowed)[keys.clamp(max=len(allowed) - 1)]
        return scores.masked_fill(~ok, float("-inf")), ok

    def _scores_numpy(self, n: int, query: np.ndarray, allowed: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The same on the CPU with numpy, over the tensor's own memory (zero-copy).

        The mask is applied with numpy too: torch's OpenMP threads started right after
        OpenBLAS's would fight its still-spinning threads for the cores (a masked search
        took 27 ms instead of 12 at 100k x 384 on 2 cores).
        """
        scores = self._matrix[:n].numpy() @ query
        if allowed is None:
            return torch.from_numpy(scores), None
        keys = self._keys_host[:n]
        ok = keys < len(allowed)
        ok[ok] = allowed[keys[ok]]
        scores[~ok] = float("-inf")
        return torch.from_numpy(scores), torch.from_numpy(ok)

    def _top(self, scores: torch.Tensor, k: int, ok: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` rows of ``scores`` (disallowed rows at -inf), ties by key ascending."""
        # One row more than asked shows whether a tie straddles the k-th place.
        values, rows = torch.topk(scores, min(k + 1, scores.shape[0]))
        values_h, rows_h = values.cpu().numpy(), rows.cpu().numpy()
        if len(values_h) > k and values_h[k] == values_h[k - 1]:
            # topk picks arbitrarily among equal scores: take every row tied with the k-th, the key order decides.
            chosen = scores >= values[k - 1]
            if ok is not None:
                chosen &= ok
            rows = torch.nonzero(chosen).flatten()
            values_h, rows_h = scores[rows].cpu().numpy(), rows.cpu().numpy()
        if ok is not None:
            keep = values_h > float("-inf")  # fewer allowed rows than k: topk filled in with disallowed ones
            values_h, rows_h = values_h[keep], rows_h[keep]
        keys = self._keys_host[rows_h]
        order = np.lexsort((keys, -values_h))[:k]
        return keys[order], values_h[order].astype(np.float32, copy=False)
