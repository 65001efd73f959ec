"""One bound ROUTER socket and what the server needs to know about it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import zmq

from ..security.curve import ServerKeys, make_curve_server
from ..security.grants import Principal
from ..security.keys import KeyStore
from ..security.peercred import UnixUsers, ipc_principal


@dataclass(eq=False)
class Listener:
    """A bound ROUTER socket: its endpoint, whether it is the admin channel, whether it speaks CURVE."""

    sock: zmq.Socket
    endpoint: str
    admin: bool
    curve: bool
    recheck_scheduled: bool = field(default=False)
    users: UnixUsers = field(default_factory=UnixUsers)
    """uid -> grant name of ipc peers (cached: looked up on every request)."""

    @property
    def is_ipc(self) -> bool:
        return self.endpoint.startswith("ipc://")

    def ipc_principal(self, frame: zmq.Frame, keys: KeyStore | None) -> Principal:
        """Who sent ``frame`` on this ipc socket: its Unix user, from the credentials the kernel
        gave libzmq (SO_PEERCRED) when the peer connected."""
        try:
            address = frame.get("Peer-Address")
        except zmq.ZMQError:  # no address recorded for this connection: no credentials either
            address = None
        return ipc_principal(address, self.users, keys.lookup_user if keys is not None else None)


def prepare_socket_dir(path: str) -> None:
    """Create the directory of an ipc socket (owner and group only), and refuse one that another
    user owns: in a shared directory such as /tmp, whoever owns it could swap the socket."""
    os.makedirs(path, mode=0o750, exist_ok=True)
    owner = os.stat(path).st_uid
    if owner not in (os.getuid(), 0):
        raise PermissionError(f"socket directory {path} belongs to uid {owner}, not to this user; "
                              "refusing to listen there")


def bind_listener(
    ctx: zmq.Context,
    endpoint: str,
    *,
    admin: bool,
    max_message_bytes: int,
    ipc_mode: int,
    curve: ServerKeys | None,
) -> Listener:
    """Bind a ROUTER socket. TCP endpoints get CURVE when server keys are given; ipc sockets get
    ``ipc_mode`` file permissions (they are the access control for local clients)."""
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 1000)
    # Hard cap far above the configured limit: frames between the two get a TOO_LARGE reply,
    # frames above it make libzmq drop the connection before buffering them.
    sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes * 2 + (1 << 20))
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
    # Replies waiting for a peer that does not read are capped per peer (ROUTER drops beyond it);
    # with replies capped at max_message_bytes this bounds what one stalled client can pin.
    sock.setsockopt(zmq.SNDHWM, 1000)
    # A reply to a peer whose send queue is full raises EAGAIN instead of vanishing: the server
    # cuts off a client that does not read its replies.
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.RCVHWM, 10_000)
    use_curve = curve is not None and endpoint.startswith("tcp://")
    if use_curve:
        make_curve_server(sock, curve)
    if endpoint.startswith("ipc://"):
        prepare_socket_dir(os.path.dirname(endpoint[len("ipc://"):]) or ".")
    sock.bind(endpoint)
    actual = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    if actual.startswith("ipc://"):
        os.chmod(actual[len("ipc://"):], ipc_mode)
    return Listener(sock=sock, endpoint=actual, admin=admin, curve=use_curve)
