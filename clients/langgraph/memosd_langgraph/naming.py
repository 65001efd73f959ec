"""How LangGraph namespaces and keys become memosd names, tags and idempotency keys.

A LangGraph namespace tuple is one memosd namespace (a real storage boundary):
``("users", "u-1", "prefs")`` under the default prefix ``lg`` is ``lg:users.u-1.prefs``.
Labels cannot hold ``.`` (LangGraph forbids it), so ``.`` separates them; in a
label, letters, digits and ``-`` stay as they are and every other character is
written as ``_`` plus the two hex digits of each of its UTF-8 bytes (``_`` itself
is ``_5f``), which keeps the name inside memosd's alphabet and reversible.

A key is a tag on its memory (``lg-key:<key>``, exact-match filter in memosd)
and the idempotency key of the key's first version, which makes creating a key
atomic: two writers racing to create it get one memory.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from langgraph.store.base import InvalidNamespaceError

MAX_NAMESPACE_CHARS = 128
"""memosd's limit on a namespace name."""
MAX_TAG_CHARS = 128
MAX_IDEMPOTENCY_KEY_BYTES = 200

NOINDEX_TAG = "lg-noindex"
"""Marks an item put with ``index=False``: kept out of query ranking."""

_PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_@-]{0,31}")
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_ESCAPED_RE = re.compile(r"(?:[A-Za-z0-9-]|_[0-9a-f]{2})+")


def _escape(label: str) -> str:
    out = []
    for ch in label:
        if ch in _PLAIN:
            out.append(ch)
        else:
            out.extend(f"_{byte:02x}" for byte in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def _unescape(text: str) -> str | None:
    if not _ESCAPED_RE.fullmatch(text):
        return None
    raw = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "_":
            raw.append(int(text[i + 1:i + 3], 16))
            i += 3
        else:
            raw.extend(text[i].encode())
            i += 1
    try:
        label = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # Only the canonical spelling decodes, so one tuple has exactly one memosd name.
    return label if _escape(label) == text else None


@dataclass(frozen=True, slots=True)
class NamespaceCodec:
    """Maps namespace tuples to memosd namespace names under ``prefix`` and back."""

    prefix: str = "lg"

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not _PREFIX_RE.fullmatch(self.prefix):
            raise ValueError(
                f"namespace prefix {self.prefix!r} must be 1-32 letters, digits, '_', '@' or '-', "
                "starting with a letter or digit")

    def encode(self, namespace: tuple[str, ...]) -> str | None:
        """The memosd name of a non-empty namespace, or None when it is too long to be stored."""
        name = f"{self.prefix}:" + ".".join(_escape(label) for label in namespace)
        return name if len(name) <= MAX_NAMESPACE_CHARS else None

    def encode_for_write(self, namespace: tuple[str, ...]) -> str:
        """Like :meth:`encode`, but a namespace memosd cannot hold is an error."""
        name = self.encode(namespace)
        if name is None:
            raise InvalidNamespaceError(
                f"namespace {namespace!r} does not fit memosd's {MAX_NAMESPACE_CHARS}-character "
                "namespace names once encoded; use shorter labels")
        return name

    def decode(self, name: str) -> tuple[str, ...] | None:
        """The namespace tuple of a memosd name, or None for names this store did not make."""
        head = f"{self.prefix}:"
        if not name.startswith(head) or len(name) == len(head):
            return None
        labels = []
        for part in name[len(head):].split("."):
            label = _unescape(part)
            if label is None:
                return None
            labels.append(label)
        return tuple(labels)


def _bounded(marker: str, key: str, fits: bool) -> str:
    if fits:
        return f"{marker}:{key}"
    # Too long for memosd's field: a digest stands in; reads still check the stored key itself.
    return f"{marker}#{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"


def key_tag(key: str) -> str:
    """The tag that finds a key's current version."""
    return _bounded("lg-key", key, 0 < len(key) <= MAX_TAG_CHARS - len("lg-key:"))


def key_idempotency(key: str) -> str:
    """The idempotency key of a key's first version."""
    return _bounded("lg-key", key, len(key.encode("utf-8", "surrogatepass")) <= MAX_IDEMPOTENCY_KEY_BYTES - 7)
