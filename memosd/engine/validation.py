"""Argument checks shared by the engine's operations: each raises a typed error naming the field."""

from __future__ import annotations

import math

from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import InvalidArgumentError, TooLargeError

from ..config import LimitsConfig
from .namespace import TIERS
from .registry import MAX_MEMORY_ID

MAX_TAGS = 64
MAX_IDEMPOTENCY_KEY_BYTES = 200


class Validation:
    """Mixin for the engine: checks against ``self.limits`` (replaced live on reload)."""

    limits: LimitsConfig

    def _check_text(self, text: str, where: str) -> None:
        if not text.strip():
            raise InvalidArgumentError(f"{where}: text is empty")
        if len(text) * 4 > self.limits.max_text_bytes and len(text.encode()) > self.limits.max_text_bytes:
            raise TooLargeError(f"{where}: text is over {self.limits.max_text_bytes} bytes")

    @staticmethod
    def _check_time(value: float | None, where: str) -> None:
        if value is not None and not math.isfinite(value):
            raise InvalidArgumentError(f"{where}: must be a finite number of seconds")

    def _check_tags(self, tags: list[str], where: str) -> None:
        if len(tags) > MAX_TAGS:
            raise TooLargeError(f"{where}: at most {MAX_TAGS} tags")
        for tag in tags:
            if not tag or len(tag) > 128:
                raise InvalidArgumentError(f"{where}: tags must be 1-128 characters")

    @staticmethod
    def _check_idempotency_key(key: str | None, where: str) -> None:
        # Bytes, not characters: the key becomes part of an LMDB key (at most 511 bytes).
        if key is not None and not 0 < len(key.encode()) <= MAX_IDEMPOTENCY_KEY_BYTES:
            raise InvalidArgumentError(f"{where} must be 1-{MAX_IDEMPOTENCY_KEY_BYTES} bytes of UTF-8")

    def _check_batch(self, count: int, what: str) -> None:
        if count == 0:
            raise InvalidArgumentError(f"{what} is empty")
        if count > self.limits.max_batch:
            raise TooLargeError(f"{what} has {count} entries; the limit is {self.limits.max_batch}")

    def _check_ids(self, ids: list[int]) -> None:
        self._check_batch(len(ids), "ids")
        for memory_id in ids:
            if not 1 <= memory_id <= MAX_MEMORY_ID:
                raise InvalidArgumentError(f"id {memory_id} is out of range (1..{MAX_MEMORY_ID})")

    def _check_filters(self, filters: m.Filters) -> None:
        self._check_time(filters.after, "filters.after")
        self._check_time(filters.before, "filters.before")

    def _check_limit(self, limit: int) -> None:
        if not 1 <= limit <= self.limits.max_list:
            raise InvalidArgumentError(f"limit must be between 1 and {self.limits.max_list}")

    def _check_imported(self, mem: m.Memory, where: str) -> None:
        """An imported version is checked like a new one, plus its ids, links and times."""
        self._check_ids([mem.id])
        self._check_text(mem.text, where)
        self._check_tags(mem.tags, where + ".tags")
        self._check_idempotency_key(mem.idempotency_key, where + ".idempotency_key")
        for field in ("created_at", "valid_from", "valid_to", "event_time", "forgotten_at"):
            self._check_time(getattr(mem, field), f"{where}.{field}")
        for field in ("supersedes", "superseded_by", "lineage"):
            linked = getattr(mem, field)
            if linked is not None and not 1 <= linked <= MAX_MEMORY_ID:
                raise InvalidArgumentError(f"{where}.{field} {linked} is out of range")
        if mem.id in (mem.supersedes, mem.superseded_by):
            raise InvalidArgumentError(f"{where}: a version cannot supersede itself")
        if (mem.valid_to is None) != (mem.superseded_by is None):
            raise InvalidArgumentError(f"{where}: valid_to and superseded_by go together")
        if mem.tier not in TIERS:
            raise InvalidArgumentError(f"{where}.tier must be one of {', '.join(TIERS)}")
