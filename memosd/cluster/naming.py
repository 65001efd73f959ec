"""Names of everything a cluster keeps in NATS: the log stream, its subjects, the buckets.

Namespace names may hold characters that NATS gives a meaning to ('.' separates
subject tokens; ':' and '@' are not allowed in bucket keys), so a namespace
appears in subjects and keys as the hex of its UTF-8 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Names:
    """Every NATS name of one cluster, derived from its ``[cluster] prefix``."""

    prefix: str = "memosd"

    @property
    def stream(self) -> str:
        """The log: one stream, one subject per namespace."""
        return f"{self.prefix}_log"

    @property
    def log_subjects(self) -> str:
        return f"{self.prefix}.log.*"

    @property
    def keys_subject(self) -> str:
        """Client keys and grants: one subject every node follows."""
        return f"{self.prefix}.keys"

    def subject(self, namespace: str) -> str:
        return f"{self.prefix}.log.{token(namespace)}"

    @property
    def lease_bucket(self) -> str:
        return f"{self.prefix}_leases"

    @property
    def node_bucket(self) -> str:
        return f"{self.prefix}_nodes"

    def ping_subject(self, node: str) -> str:
        """Core NATS request/reply subject a live node answers on (is the owner there at all?)."""
        return f"{self.prefix}.ping.{token(node)}"


def token(name: str) -> str:
    """A namespace or node name as one subject token and bucket key."""
    return name.encode().hex()


def from_token(value: str) -> str:
    return bytes.fromhex(value).decode()
