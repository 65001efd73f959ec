"""Client keys: CURVE public keys with namespace grants, stored in LMDB (``principals``).

The daemon keeps only public keys; a client's secret key is returned once, when
created. Revocation takes effect on the next request of any open connection,
because every request is mapped from its CURVE key to a principal again.

A record named ``unix:<user>`` holds no key: it grants namespaces to the ipc
peers of that Unix user (see :mod:`.peercred`), and is created, listed and
revoked like a key.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import lmdb
import msgspec
import zmq

from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import ConflictError, InvalidArgumentError, NotFoundError

from ..store.environment import Environment
from ..store.writer import WriterThread
from .grants import RIGHTS, Principal
from .peercred import UNIX_PREFIX, resolve_user_grant_name

Also = Callable[[lmdb.Transaction], None]
"""More to write in the same transaction as a key change."""

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_record_decoder = msgspec.msgpack.Decoder(m.KeyInfo)


class KeyStore:
    """Principals known by CURVE public key (z85), and Unix users' grants by ``unix:<user>``."""

    def __init__(self, env: Environment, writer: WriterThread):
        self.env = env
        self.writer = writer
        self._db = env.dbs["principals"]
        self.records: dict[str, m.KeyInfo] = {}
        self.by_key: dict[bytes, Principal] = {}
        self.by_user: dict[str, Principal] = {}
        with env.read() as txn:
            for _, raw in txn.cursor(db=self._db):
                self._index(_record_decoder.decode(raw))

    def _index(self, record: m.KeyInfo) -> None:
        self.records[record.name] = record
        if record.name.startswith(UNIX_PREFIX):
            if record.revoked_at is None:
                self.by_user[record.name] = Principal(record.name, tuple(record.grants))
            else:
                self.by_user.pop(record.name, None)
            return
        key = record.public_key.encode()
        if record.revoked_at is None:
            self.by_key[key] = Principal(record.name, tuple(record.grants))
        else:
            self.by_key.pop(key, None)

    def lookup(self, public_key: bytes) -> Principal | None:
        """The principal of an active key (z85 bytes), or None when unknown or revoked."""
        return self.by_key.get(public_key)

    def lookup_user(self, name: str) -> Principal | None:
        """The principal of a Unix user (``unix:<user>``) with active grants, or None."""
        return self.by_user.get(name)

    def allows(self, public_key: bytes) -> bool:
        return public_key in self.by_key

    async def create(self, name: str, grants: list[m.Grant]) -> tuple[m.KeyInfo, str]:
        """Create a key pair for ``name``; returns the stored record and the secret key (z85).
        For ``unix:<user>`` only grants are stored: the returned secret is empty."""
        record, secret = self.prepare(name, grants)
        return await self.store_created(record), secret

    def prepare(self, name: str, grants: list[m.Grant]) -> tuple[m.KeyInfo, str]:
        """Check a new key's name and grants and make its key pair: the record to store, and the secret."""
        try:
            user_name = resolve_user_grant_name(name)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from None
        if user_name is None and not NAME_PATTERN.fullmatch(name):
            raise InvalidArgumentError("key names are 1-64 letters, digits and . _ @ -, "
                                       "or unix:<user> for a Unix user's grants")
        if not grants:
            raise InvalidArgumentError("a key needs at least one grant (NAMESPACE_PATTERN:RIGHT)")
        for grant in grants:
            if grant.rights not in RIGHTS or not grant.namespace:
                raise InvalidArgumentError(f"bad grant {grant}")
        if user_name is not None:
            name, public, secret = user_name, b"", b""
        else:
            public, secret = zmq.curve_keypair()
        return m.KeyInfo(name=name, public_key=public.decode(), grants=grants, created_at=time.time()), secret.decode()

    async def store_created(self, record: m.KeyInfo, also: Also | None = None) -> m.KeyInfo:
        """Store a prepared key (CONFLICT while an active one has its name); ``also`` runs in the same
        write transaction (a cluster node records the log position there)."""
        name = record.name

        def run(txn: lmdb.Transaction):
            existing = txn.get(name.encode(), db=self._db)
            if existing is not None and _record_decoder.decode(existing).revoked_at is None:
                raise ConflictError(f"key {name!r} exists; revoke it first")
            txn.put(name.encode(), msgspec.msgpack.encode(record), db=self._db)
            if also is not None:
                also(txn)
            return record

        return await self.writer.submit(run, self._apply)

    async def revoke(self, name: str, now: float | None = None, also: Also | None = None) -> m.KeyInfo:
        """Revoke ``name`` at ``now`` (default: the clock); ``also`` as for :meth:`store_created`."""
        at = time.time() if now is None else now

        def run(txn: lmdb.Transaction):
            raw = txn.get(name.encode(), db=self._db)
            if raw is None:
                raise NotFoundError(f"no key named {name!r}")
            record = _record_decoder.decode(raw)
            if record.revoked_at is None:
                record = msgspec.structs.replace(record, revoked_at=at)
                txn.put(name.encode(), msgspec.msgpack.encode(record), db=self._db)
            if also is not None:
                also(txn)
            return record

        return await self.writer.submit(run, self._apply)

    def _apply(self, record: m.KeyInfo) -> m.KeyInfo:
        self._index(record)
        return record

    def list(self) -> list[m.KeyInfo]:
        return [self.records[name] for name in sorted(self.records)]
