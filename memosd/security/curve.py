"""CURVE for TCP endpoints: the server's key pair and the ZAP handler that admits client keys."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator

from .keys import KeyStore


@dataclass(frozen=True, slots=True)
class ServerKeys:
    public: bytes
    secret: bytes


def load_or_create_server_keys(path: Path) -> ServerKeys:
    """The server's CURVE key pair, created on first use (file mode 0600: it holds the secret)."""
    if path.exists():
        data = json.loads(path.read_text())
        return ServerKeys(data["public_key"].encode(), data["secret_key"].encode())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    public, secret = zmq.curve_keypair()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"public_key": public.decode(), "secret_key": secret.decode()}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    return ServerKeys(public, secret)


class _KeyStoreCredentials:
    """ZAP credentials provider: a client key is admitted only while it is active in the key store."""

    def __init__(self, keys: KeyStore):
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        return self.keys.allows(key)


def start_authenticator(ctx: zmq.Context, keys: KeyStore) -> ThreadAuthenticator:
    """Run the ZAP handler (its own thread): unknown or revoked keys fail the handshake, before any
    request is read. The connection's User-Id is the client's public key (z85)."""
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=_KeyStoreCredentials(keys))
    return auth


def make_curve_server(sock: zmq.Socket, server: ServerKeys) -> None:
    sock.curve_secretkey = server.secret
    sock.curve_publickey = server.public
    sock.curve_server = True
