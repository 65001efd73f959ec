"""The embedded vector stores memosd is compared with, driven in-process with default settings.

Each store takes the same unit float32 rows in batches and answers top-k
queries with row indices. chromadb and lancedb are optional (the ``peers``
extra): :func:`open_store` returns None with the reason when one is missing,
and the comparison goes on without it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np


class PeerStore(Protocol):
    """A vector store under test: rows go in by index, queries come back as indices, best first."""

    name: str
    config: str
    """What was measured, in words (version, index, metric), for the report."""

    def add(self, start: int, rows: np.ndarray) -> None:
        """Store ``rows`` as indices ``start .. start + len(rows) - 1``."""

    def finish(self) -> None:
        """Anything the store needs before it answers queries on all rows (part of the insert time)."""

    def query(self, row: int, vector: np.ndarray, k: int) -> list[int]:
        """Indices of the top ``k`` rows for query ``row``, whose vector is ``vector``."""

    def close(self) -> None: ...


class NumpyExact:
    """Brute force in the caller's process: one matrix-vector product and a partial sort per query."""

    name = "numpy exact"
    config = "in-process, float32 inner product, np.argpartition"

    def __init__(self, count: int, dim: int) -> None:
        self._matrix = np.empty((count, dim), dtype=np.float32)
        self._count = 0

    def add(self, start: int, rows: np.ndarray) -> None:
        self._matrix[start:start + len(rows)] = rows
        self._count = max(self._count, start + len(rows))

    def finish(self) -> None:
        pass

    def query(self, row: int, vector: np.ndarray, k: int) -> list[int]:
        scores = self._matrix[:self._count] @ vector
        top = np.argpartition(-scores, k - 1)[:k]
        return top[np.argsort(-scores[top], kind="stable")].tolist()

    def close(self) -> None:
        self._matrix = np.empty((0, 0), dtype=np.float32)


class Chroma:
    """chromadb ``PersistentClient``, one collection, default HNSW settings, embeddings given."""

    name = "chromadb"

    def __init__(self, path: Path) -> None:
        import chromadb
        from chromadb.config import Settings

        self._client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
        # embedding_function=None: vectors are given, so chromadb must not load its own model.
        self._collection = self._client.create_collection("bench", embedding_function=None)
        self.config = f"chromadb {chromadb.__version__} PersistentClient, default HNSW (l2)"

    def add(self, start: int, rows: np.ndarray) -> None:
        self._collection.add(ids=[str(i) for i in range(start, start + len(rows))], embeddings=rows)

    def finish(self) -> None:
        pass

    def query(self, row: int, vector: np.ndarray, k: int) -> list[int]:
        found = self._collection.query(query_embeddings=vector[None, :], n_results=k, include=[])
        return [int(i) for i in found["ids"][0]]

    def close(self) -> None:
        self._client = self._collection = None


class Lance:
    """lancedb on a local directory, one table, no vector index (its default: exact search)."""

    name = "lancedb"

    def __init__(self, path: Path, dim: int) -> None:
        import lancedb
        import pyarrow as pa

        self._pa = pa
        self._db = lancedb.connect(str(path))
        self._dim = dim
        self._table = None
        self.config = f"lancedb {lancedb.__version__}, no index (exact, l2), one fragment per batch"

    def _batch(self, start: int, rows: np.ndarray):
        pa = self._pa
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(rows).reshape(-1)), self._dim)
        return pa.table({"id": pa.array(np.arange(start, start + len(rows), dtype=np.int64)), "vector": vectors})

    def add(self, start: int, rows: np.ndarray) -> None:
        batch = self._batch(start, rows)
        if self._table is None:
            self._table = self._db.create_table("bench", data=batch)
        else:
            self._table.add(batch)

    def finish(self) -> None:
        pass

    def query(self, row: int, vector: np.ndarray, k: int) -> list[int]:
        # Asking for _distance explicitly: lancedb adds it anyway and warns on every query otherwise.
        found = self._table.search(vector).limit(k).select(["id", "_distance"]).to_arrow()
        return found["id"].to_pylist()

    def close(self) -> None:
        self._table = self._db = None


PACKAGES = {"chromadb": "chromadb", "lancedb": "lancedb", "memosd-hnsw": "memosd_ann"}
"""Peer name -> the module it needs (chromadb and lancedb: ``pip install 'memosd[peers]'``; memosd-hnsw:
the memosd-ann plugin, ``pip install -e plugins/memosd-ann``)."""


def missing_package(name: str) -> str | None:
    """Why peer ``name`` cannot run here (its package is not importable), or None when it can."""
    module = PACKAGES.get(name)
    if module is None:
        return None
    try:
        importlib.import_module(module)
    except ImportError as exc:
        how = "pip install -e plugins/memosd-ann" if name == "memosd-hnsw" else "pip install 'memosd[peers]'"
        return f"{module} is not installed ({exc.msg}); {how}"
    return None


def open_store(name: str, where: Path, count: int, dim: int) -> PeerStore:
    """A fresh, empty in-process store for peer ``name`` under the directory ``where``."""
    if name == "numpy":
        return NumpyExact(count, dim)
    if name == "chromadb":
        return Chroma(where / "chromadb")
    if name == "lancedb":
        return Lance(where / "lancedb", dim)
    raise ValueError(f"unknown peer {name!r}")
