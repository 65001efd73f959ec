"""Client-side CURVE keys for TCP endpoints of a daemon with ``[security] curve = true``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import zmq


@dataclass(frozen=True, slots=True)
class CurveKeys:
    """The client's key pair and the server's public key, all z85 text (40 characters)."""

    public_key: str
    secret_key: str
    server_public_key: str

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "CurveKeys":
        """Read a key file written by ``memosd keys create NAME -o FILE``."""
        with open(path) as fh:
            data = json.load(fh)
        return cls(data["public_key"], data["secret_key"], data["server_public_key"])

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_serverkey = self.server_public_key.encode()
        sock.curve_publickey = self.public_key.encode()
        sock.curve_secretkey = self.secret_key.encode()


def default_keys() -> CurveKeys | None:
    """Keys from ``$MEMOSD_KEY_FILE``, if set."""
    path = os.environ.get("MEMOSD_KEY_FILE")
    return CurveKeys.from_file(path) if path else None
