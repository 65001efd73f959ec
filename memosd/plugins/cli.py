"""``memosd plugins``: installed plugins, their status and errors, and re-embedding progress."""

from __future__ import annotations

import argparse

from memosd_client import AdminClient
from memosd_client.protocol import messages as m

from ..cli.output import ExitCode, print_json


def cmd_plugins(args) -> int:
    """Print the daemon's plugin table (a table, or the PluginsResult as JSON with --json)."""
    with AdminClient(args.admin_endpoint, timeout=args.timeout) as admin:
        result: m.PluginsResult = admin.request("plugins", m.PluginsArgs())
    if args.json:
        print_json(result)
        return ExitCode.OK
    print(f"{'GROUP':18} {'NAME':20} {'VERSION':10} STATUS")
    for info in result.plugins:
        line = f"{info.group:18} {info.name:20} {info.version or '-':10} {info.status}"
        print(line + (f"  ({info.error})" if info.error else ""))
    if result.encoder:
        state = "on" if result.dense else "off"
        print(f"\ndense channel: {state} (encoder {result.encoder}, backend {result.backend})")
    else:
        failed = [p.name for p in result.plugins if p.group == "memosd.encoders" and p.status == "failed"]
        why = f"encoder {failed[0]} failed" if failed else "no [plugins] encoder configured"
        print(f"\ndense channel: off ({why}; lexical retrieval only)")
    mig = result.migration
    if mig is not None and mig.state != "idle":
        print(f"embedding: {mig.state}, {mig.vectors_done}/{mig.vectors_total} memories, "
              f"{mig.namespaces_pending} namespaces pending")
    return ExitCode.OK


def add_plugins_command(sub, common: argparse.ArgumentParser) -> None:
    """Add ``memosd plugins`` (admin endpoint) to the ``memosd`` subparsers."""
    p = sub.add_parser("plugins", parents=[common], help=_summary(), description=_summary())
    p.set_defaults(handler=cmd_plugins)


def _summary() -> str:
    from memosd_client.protocol import OPERATIONS

    return OPERATIONS["plugins"].summary
