"""Which node should own a namespace: rendezvous (highest-random-weight) hashing.

Every node computes the same answer from the same list of live nodes, with no
coordination; when a node joins it takes about 1/N of the namespaces, and when
one leaves only its namespaces move.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def _weight(node: str, namespace: str) -> int:
    digest = hashlib.blake2b(f"{node}\0{namespace}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def preferred_owner(namespace: str, nodes: Iterable[str]) -> str | None:
    """The live node the namespace belongs on (None when there is none)."""
    return max(nodes, key=lambda node: (_weight(node, namespace), node), default=None)
