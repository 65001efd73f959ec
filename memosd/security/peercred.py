"""ipc peers as identities: the Unix user of the process at the other end of an ipc connection.

On Linux, libzmq reads the connecting process's credentials with ``SO_PEERCRED`` when it accepts
an ipc connection and appends them to the connection's ``Peer-Address`` (``...:<uid>:<gid>:<pid>``),
which every received frame carries as metadata. The kernel fills those numbers, so a client cannot
forge them. The daemon's own user and root stay fully trusted (the socket's file mode already lets
them in, and root could read the store anyway); any other user is a principal named
``unix:<username>`` whose grants live in the key store like those of a CURVE key.
"""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .grants import LOCAL, Principal

UNIX_PREFIX = "unix:"
"""Grants for a Unix user are recorded under the name ``unix:<username>``."""


@dataclass(frozen=True, slots=True)
class PeerCred:
    """The credentials of an ipc peer, as the kernel reported them when it connected."""

    uid: int
    gid: int
    pid: int


def parse_peer_address(address: str | None) -> PeerCred | None:
    """The credentials in a frame's ``Peer-Address`` for an ipc connection, or None when libzmq
    did not add them (not Linux, or not an ipc connection)."""
    if not address or not sys.platform.startswith("linux"):
        # Other systems format their peer credentials differently (or not at all): no identity there.
        return None
    fields = address.rsplit(":", 3)
    if len(fields) != 4:
        return None
    try:
        uid, gid, pid = (int(value) for value in fields[1:])
    except ValueError:
        return None
    return PeerCred(uid=uid, gid=gid, pid=pid)


def unix_principal_name(username: str) -> str:
    return UNIX_PREFIX + username


class UnixUsers:
    """Maps peer uids to the names grants use; trusted uids (the daemon's own, root) map to None.

    Names are cached per uid and per peer address: this runs on every ipc request, and
    ``getpwuid`` reads /etc/passwd.
    """

    MAX_ADDRESSES = 4096
    """Addresses include the peer's pid, so they are many over a long run: the cache starts over past this."""

    def __init__(self, trusted_uids: frozenset[int] | None = None):
        self.trusted = trusted_uids if trusted_uids is not None else frozenset({0, os.getuid()})
        self._names: dict[int, str] = {}
        self._by_address: dict[str | None, str | None] = {}

    def name_for_address(self, address: str | None) -> str | None:
        """:meth:`principal_name` of the peer at ``address`` (a frame's ``Peer-Address``); None
        for a trusted peer or one without credentials."""
        try:
            return self._by_address[address]
        except KeyError:
            pass
        cred = parse_peer_address(address)
        name = self.principal_name(cred.uid) if cred is not None else None
        if len(self._by_address) >= self.MAX_ADDRESSES:
            self._by_address.clear()
        self._by_address[address] = name
        return name

    def principal_name(self, uid: int) -> str | None:
        """``unix:<username>`` for an untrusted uid (``unix:<uid>`` when it has no passwd entry),
        None for a trusted one."""
        if uid in self.trusted:
            return None
        name = self._names.get(uid)
        if name is None:
            try:
                name = unix_principal_name(pwd.getpwuid(uid).pw_name)
            except KeyError:
                name = unix_principal_name(str(uid))
            self._names[uid] = name
        return name


def ipc_principal(address: str | None, users: UnixUsers,
                  lookup_user: Callable[[str], Principal | None] | None) -> Principal:
    """Who an ipc peer is, from its frame's ``Peer-Address``: LOCAL (full access) for a trusted user
    or when the system gave no credentials; otherwise the grants recorded for ``unix:<user>``,
    none when there are none (every namespace refused with FORBIDDEN)."""
    name = users.name_for_address(address)
    if name is None:
        return LOCAL
    principal = lookup_user(name) if lookup_user is not None else None
    return principal if principal is not None else Principal(name, ())


def resolve_user_grant_name(name: str) -> str | None:
    """For a grant name ``unix:<user>``, the canonical name (the user must exist on this host, so a
    misspelt user is refused rather than silently granting nobody); None for a CURVE key name.
    Raises ValueError for a user that does not exist."""
    if not name.startswith(UNIX_PREFIX):
        return None
    user = name[len(UNIX_PREFIX):]
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, OverflowError):
        raise ValueError(f"no Unix user {user!r} on this host") from None
    return unix_principal_name(entry.pw_name)
