"""What a stored item looks like in memosd, and back: text to rank, meta holding the value."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from langgraph.store.base import Item, SearchItem, get_text_at_path, tokenize_path
from memosd_client import Memory

from .errors import InvalidValueError

META_KEY = "langgraph"
"""The memory's meta holds ``{"langgraph": {"key", "value"[, "created_at"]}}``."""
SOURCE = "langgraph"


def normalize_value(value: Any) -> dict[str, Any]:
    """The value as JSON data (what a later get returns), or a clear error."""
    if not isinstance(value, Mapping):
        raise InvalidValueError(f"an item's value must be a mapping with string keys, not {type(value).__name__}")
    try:
        # A JSON round trip: the value is kept with JSON semantics, as LangGraph's database stores do.
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"an item's value must be JSON-serializable: {exc}") from None


def index_text(value: dict[str, Any], key: str, index: Any, fields: list[str]) -> tuple[str, bool]:
    """The text memosd indexes for the value, and whether the item takes part in query ranking.

    ``index=False`` (or no text at the chosen paths) keeps it out of ranking; memosd needs
    some text per memory, so such an item is stored under its key.
    """
    if index is False:
        return _fallback(key), False
    paths = fields if index is None else index
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise InvalidValueError(f"index must be False, None or a list of field paths, not {index!r}")
    texts: list[str] = []
    for path in paths:
        texts.extend(get_text_at_path(value, path if path == "$" else tokenize_path(path)))
    text = "\n".join(t for t in texts if t.strip())
    return (text, True) if text else (_fallback(key), False)


def clip_text(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, at a character boundary."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", "ignore")


def _fallback(key: str) -> str:
    return key if key.strip() else "(item)"


def build_meta(key: str, value: dict[str, Any], created_at: float | None) -> dict[str, Any]:
    body: dict[str, Any] = {"key": key, "value": value}
    if created_at is not None:  # a later version keeps the item's creation time
        body["created_at"] = created_at
    return {META_KEY: body}


def stored_key(mem: Memory) -> str | None:
    """The LangGraph key a memory holds, or None for memories this store did not write."""
    body = mem.meta.get(META_KEY)
    if isinstance(body, dict) and isinstance(body.get("key"), str) and isinstance(body.get("value"), dict):
        return body["key"]
    return None


def created_at(mem: Memory) -> float:
    created = mem.meta[META_KEY].get("created_at")
    return float(created) if isinstance(created, (int, float)) and math.isfinite(created) else mem.created_at


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def to_item(mem: Memory, namespace: tuple[str, ...]) -> Item:
    body = mem.meta[META_KEY]
    return Item(value=body["value"], key=body["key"], namespace=namespace,
                created_at=_dt(created_at(mem)), updated_at=_dt(mem.created_at))


def to_search_item(mem: Memory, namespace: tuple[str, ...], score: float | None) -> SearchItem:
    body = mem.meta[META_KEY]
    return SearchItem(namespace=namespace, key=body["key"], value=body["value"],
                      created_at=_dt(created_at(mem)), updated_at=_dt(mem.created_at), score=score)
