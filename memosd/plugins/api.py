"""The interfaces plugins implement, one per entry-point group.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."memosd.encoders"]
    my-encoder = "my_package:MyEncoder"

The entry point names a zero-argument callable (usually a class) returning an
object that satisfies the group's Protocol below. memosd's own built-ins are
registered exactly the same way (see memosd's ``pyproject.toml``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

ENCODERS = "memosd.encoders"
"""Entry-point group of dense text encoders (:class:`Encoder`)."""
BACKENDS = "memosd.backends"
"""Entry-point group of vector index backends (:class:`VectorBackend` factories)."""
POLICIES = "memosd.policies"
"""Entry-point group of consolidation policies (:class:`ConsolidationPolicy`)."""
GROUPS = (ENCODERS, BACKENDS, POLICIES)


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into dense vectors.

    ``name``, ``version`` and ``dim`` form the encoder's identity, which memosd
    stores next to the vectors: bump ``version`` whenever the same text would
    get a different vector, so stored vectors are re-embedded instead of mixed.
    ``encode`` is called from one memosd worker thread at a time, under a
    timeout; it must not keep references to its input.
    """

    name: str
    version: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), each row L2-normalised (or all zero)."""
        ...

    # Optional: asymmetric encoders (E5's "query:"/"passage:" prefixes, for example) may also define
    #     def encode_query(self, texts: Sequence[str]) -> np.ndarray
    # with the same contract; memosd then uses it for recall queries and ``encode`` for memories.


@runtime_checkable
class VectorBackend(Protocol):
    """Stores vectors under integer keys and finds the nearest ones by inner product.

    The entry point names a factory called as ``factory(dim)`` for each
    namespace. Keys are non-negative int64 chosen by memosd (dense, starting at
    0). Calls come from the daemon's event loop thread only.
    """

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Insert (or replace) ``vectors`` (float32, shape (n, dim)) under ``keys`` (int64, shape (n,))."""
        ...

    def remove(self, keys: np.ndarray) -> None:
        """Drop these keys; unknown keys are ignored."""
        ...

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` (keys, scores) by inner product, scores descending, equal scores by key ascending.

        ``allowed`` is an optional bool mask indexed by key; keys past its end
        or False in it must not be returned.
        """
        ...

    def __len__(self) -> int:
        """Number of stored vectors."""
        ...

    @property
    def nbytes(self) -> int:
        """Approximate RAM held."""
        ...

    # Optional (both or neither), for backends that take long to build; see docs/plugins.md:
    # def save(self, directory: str) -> None: write everything under ``directory`` (created).
    # def load(self, directory: str) -> bool: replace the contents with a save; False when none is usable.


@dataclass(frozen=True, slots=True)
class TurnView:
    """One memory of a page, as a consolidation policy sees it."""

    id: int
    text: str
    session: str | None
    source: str | None
    event_time: float | None
    """Seconds since the epoch (UTC) the turn is about: its session's date in a conversation."""
    created_at: float


@dataclass(frozen=True, slots=True)
class PageView:
    """A closed page of related consecutive turns handed to a policy (oldest turn first)."""

    namespace: str
    page_id: int
    turns: tuple[TurnView, ...]


@dataclass(frozen=True, slots=True)
class Fact:
    """One consolidated fact and the memories it was derived from."""

    text: str
    sources: tuple[int, ...]
    """Ids of the memories (turns) the fact came from: its provenance. Must be ids of the page's turns."""
    event_time: float | None = None
    """When the fact happened, if the policy resolved it (e.g. "yesterday" on the session's date)."""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EntityMention:
    """An entity (person, place, thing) named in the page, and the turns that name it."""

    name: str
    sources: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Consolidation:
    """What a policy makes of one page: the long-term knowledge memosd stores with provenance."""

    summary: str
    """A short summary of the page (a few hundred characters at most)."""
    keywords: tuple[str, ...] = ()
    facts: tuple[Fact, ...] = ()
    entities: tuple[EntityMention, ...] = ()
    usage: dict[str, int] = field(default_factory=dict)
    """Resource accounting the policy wants reported, e.g. {"prompt_tokens": 812, "completion_tokens": 96}."""


@runtime_checkable
class ConsolidationPolicy(Protocol):
    """Condenses a closed page of turns into long-term knowledge (mid-term -> long-term memory).

    memosd's scheduler calls ``consolidate`` on a worker thread, off the
    request path, under a timeout. A policy that raises, hangs or returns
    something invalid (a source that is not one of the page's turns, text
    over the limits) is counted as failed and the built-in ``extractive``
    policy consolidates the page instead. Output must be deterministic for
    the same page when the policy can make it so.
    """

    name: str
    version: str

    def consolidate(self, page: PageView) -> Consolidation:
        """Knowledge for ``page``; every fact and entity names its sources among the page's turn ids."""
        ...
