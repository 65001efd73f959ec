"""Shared by the suites: daemons on temporary stores, generated memory texts, store digests."""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
import uuid
from pathlib import Path

import msgspec

from ..testing import DaemonProcess

WORDS = (
    "alpha amber anchor apple archive atlas autumn badge banner basket beacon berry blossom border bottle "
    "bridge bronze bubble cabin camera candle canyon carbon castle cedar chapter cherry circle cloud cobalt "
    "comet copper coral cotton crystal dagger desert diamond dolphin dragon dream eagle ember engine falcon "
    "feather fern festival fiber forest fossil fountain garden garnet glacier globe granite harbor harvest "
    "hazel helmet horizon island ivory jacket jasmine jungle kernel kettle ladder lagoon lantern lemon "
    "library lily lotus magnet maple marble meadow meteor mirror mountain nebula needle nickel oasis ocean "
    "olive orbit orchid paddle palace panther pepper pigeon planet pocket prism puzzle quartz quiver rabbit "
    "radar raven ribbon river rocket saddle salmon sapphire saturn shadow silver spiral spruce summit "
    "sunset tablet temple thunder tiger timber topaz tower tulip tunnel valley velvet violet voyage walnut "
    "willow window winter zephyr"
).split()
"""A fixed vocabulary, so recalls for generated queries find generated memories."""


def sentence(rng: random.Random, words: int = 12) -> str:
    """Some words from :data:`WORDS`."""
    return " ".join(rng.choice(WORDS) for _ in range(words))


def unique_token() -> str:
    """A word that occurs in no other memory, so a recall for it has exactly one right answer."""
    return "zq" + uuid.uuid4().hex[:14]


def temp_dir(base: str | None, prefix: str) -> Path:
    """A new directory under ``base`` (default: the system temp dir)."""
    if base:
        os.makedirs(base, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def new_daemon(data_dir: Path, *, env: dict[str, str] | None = None, extra_args: list[str] | None = None,
               tcp: bool = False) -> DaemonProcess:
    """A (not yet started) daemon on ``data_dir`` whose event socket is its own.

    The default event endpoint is one per user; daemons started side by side would
    take it from each other, so each gets one next to its agent socket.
    """
    daemon = DaemonProcess(data_dir, env=dict(env or {}), extra_args=extra_args, tcp=tcp)
    daemon.env.setdefault("MEMOSD_EVENTS_PUB_ENDPOINT", f"ipc://{daemon.sock_dir}/events.sock")
    return daemon


def export_digest(client, namespace: str | None = None) -> tuple[str, int]:
    """sha256 of every stored version of a namespace (sync client), and how many there are."""
    memories = list(client.export(namespace=namespace))
    return hashlib.sha256(msgspec.msgpack.encode(memories)).hexdigest(), len(memories)


def rss_bytes(pid: int) -> tuple[int, int]:
    """(RSS, anonymous RSS) of a process: RSS less its file-backed and shared pages.

    The anonymous part is the daemon's own heap; the rest is mostly LMDB's data file
    mapped into memory, which grows with the store and is page cache, not a leak.
    """
    import psutil

    info = psutil.Process(pid).memory_info()
    return info.rss, info.rss - getattr(info, "shared", 0)


def log_tail(daemon: DaemonProcess, chars: int = 1500) -> str:
    """The end of a daemon's log, for a failure message."""
    return daemon.log()[-chars:]
