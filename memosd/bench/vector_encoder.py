"""An encoder plugin that hands the daemon prepared vectors, so memosd searches the peers' data.

memosd takes vectors only from its encoder: ``remember`` carries text, and the
dense channel embeds it (``recall(vector=...)`` searches the built-in hashed
n-gram space, not the dense one). To search the very vectors the peers get,
the daemon is started with this encoder selected: a memory's text names a row
of a memory-mapped ``memories.npy`` and a query's text a row of
``queries.npy``, in the directory ``$MEMOSD_BENCH_VECTORS``.

Query texts are written in punctuation only, so they have no index terms: the
lexical channels find nothing and memosd's answer is the dense channel's
(exact numpy search by default), which is what recall@k against exact search
should measure. The daemon skips the tiers for them, as for any query they
could not score, and pays the rest of a recall (request, encoding, mask,
heat, reading the memories).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

NAME = "bench-vectors"
"""Entry-point name in ``memosd.encoders`` (select it with ``MEMOSD_PLUGINS_ENCODER``)."""
ENV = "MEMOSD_BENCH_VECTORS"
MEMORY_PREFIX = "vector "
QUERY_PREFIX = "?"
_DIGITS = ")!@#$%^&*("
"""Digit d of a query's row number is written as _DIGITS[d] (no letters or digits: no index terms)."""
_FROM_DIGIT = {c: str(i) for i, c in enumerate(_DIGITS)}


def memory_text(row: int) -> str:
    """The text that stands for row ``row`` of ``memories.npy``."""
    return f"{MEMORY_PREFIX}{row}"


def query_text(row: int) -> str:
    """The text that stands for row ``row`` of ``queries.npy`` (punctuation only)."""
    return QUERY_PREFIX + "".join(_DIGITS[int(d)] for d in str(row))


def _row(text: str, prefix: str, decode=lambda s: s) -> int | None:
    if not text.startswith(prefix):
        return None
    try:
        return int(decode(text[len(prefix):]))
    except (KeyError, ValueError):
        return None


def write_plugin_package(root: Path) -> Path:
    """Make ``root`` an importable-looking distribution that registers this encoder.

    Only metadata is written (``*.dist-info`` with ``entry_points.txt``): the entry point names this
    module, which the daemon imports from its own ``memosd`` package. Put ``root`` on the daemon's
    PYTHONPATH; importlib.metadata then finds the entry point as for a pip install.
    """
    info = root / "memosd_bench_vectors-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: memosd-bench-vectors\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[memosd.encoders]\n{NAME} = {__name__}:BenchVectorEncoder\n")
    return root


class BenchVectorEncoder:
    """Looks vectors up by row instead of computing them (an ``Encoder`` as docs/plugins.md defines)."""

    name = NAME
    version = "1"

    def __init__(self) -> None:
        where = Path(os.environ[ENV])
        # Memory-mapped: the daemon's RAM figures then count its own copy of the vectors, not ours.
        self._memories = np.load(where / "memories.npy", mmap_mode="r")
        self._queries = np.load(where / "queries.npy", mmap_mode="r")
        self.dim = int(self._memories.shape[1])
        self._fallback = np.zeros(self.dim, dtype=np.float32)
        self._fallback[0] = 1.0  # any other text (the load probe) gets one fixed unit vector

    def encode(self, texts: list[str]) -> np.ndarray:
        """Rows of ``memories.npy`` for texts made by :func:`memory_text`."""
        return self._lookup(texts, self._memories, MEMORY_PREFIX, lambda s: s)

    def encode_query(self, texts: list[str]) -> np.ndarray:
        """Rows of ``queries.npy`` for texts made by :func:`query_text`."""
        return self._lookup(texts, self._queries, QUERY_PREFIX, lambda s: "".join(_FROM_DIGIT[c] for c in s))

    def _lookup(self, texts: list[str], table: np.ndarray, prefix: str, decode) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            row = _row(text, prefix, decode)
            out[i] = table[row] if row is not None and 0 <= row < len(table) else self._fallback
        return out
