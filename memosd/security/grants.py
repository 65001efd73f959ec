"""Who may do what, where: principals, grants and the one authorization check.

Every request passes :func:`authorize` in the server before its handler runs.
Rights are ordered: ``read`` < ``write`` < ``admin``; a grant names a namespace
pattern (``fnmatch``, e.g. ``agent-*``) and the highest right it gives.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from memosd_client.protocol.errors import ForbiddenError
from memosd_client.protocol.messages import Grant, Operation

RIGHTS = ("read", "write", "admin")
_LEVEL = {name: i for i, name in enumerate(RIGHTS)}


def parse_grant(text: str) -> Grant:
    """``NAMESPACE_PATTERN:RIGHT``, e.g. ``agent-1:write`` or ``*:read`` (the last ``:`` splits)."""
    pattern, _, rights = text.rpartition(":")
    if not pattern:
        raise ValueError(f"bad grant {text!r}: expected NAMESPACE_PATTERN:RIGHT")
    if rights not in _LEVEL:
        raise ValueError(f"bad grant {text!r}: right must be one of {', '.join(RIGHTS)}")
    return Grant(namespace=pattern, rights=rights)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated client: a named key with grants, or a built-in one (local, anonymous)."""

    name: str
    grants: tuple[Grant, ...]

    def level(self, namespace: str | None) -> int:
        """Highest right on ``namespace`` (-1: none). ``None`` asks about daemon-wide operations."""
        best = -1
        for grant in self.grants:
            if namespace is None:
                if grant.namespace != "*":
                    continue
            elif not fnmatch.fnmatchcase(namespace, grant.namespace):
                continue
            best = max(best, _LEVEL[grant.rights])
        return best


LOCAL = Principal("local", (Grant("*", "admin"),))
"""ipc peers: the socket's file permissions are the access control."""


def required_right(op: Operation, args: object) -> str:
    """The right an operation needs: reads need read, writes write, admin operations and
    namespace-wide purges admin."""
    if op.admin:
        return "admin"
    if op.name == "purge" and getattr(args, "all", False):
        return "admin"
    if op.writes:
        return "write"
    return "read"


def authorize(principal: Principal, op: Operation, namespace: str | None, args: object) -> None:
    """Raise FORBIDDEN unless ``principal`` may run ``op`` on ``namespace``."""
    if op.name in ("hello", "encode"):  # touch no stored data
        return
    needed = _LEVEL[required_right(op, args)]
    # Without a namespace, an operation spans every namespace (stats of all, status): needs a "*" grant.
    scope = namespace if op.needs_namespace or namespace else None
    if principal.level(scope) < needed:
        where = f"namespace {namespace!r}" if scope else "the whole daemon"
        raise ForbiddenError(f"{principal.name!r} may not {op.name} on {where}",
                             details={"principal": principal.name, "needs": RIGHTS[needed]})
