"""How a CLI command connects: endpoint, namespace, timeout and CURVE key from its parsed flags.

Shared by every command module (``cli/main``, ``tiers/cli``) so they all connect the same way
without importing each other.
"""

from __future__ import annotations

import argparse

from memosd_client import AdminClient, Client, CurveKeys


def curve_keys(args: argparse.Namespace) -> CurveKeys | None:
    """The client key pair named by ``--key-file``, if any."""
    return CurveKeys.from_file(args.key_file) if getattr(args, "key_file", None) else None


def agent_client(args: argparse.Namespace) -> Client:
    """A client on the agent endpoint with the command's connection settings."""
    return Client(args.endpoint, namespace=args.namespace, timeout=args.timeout, curve=curve_keys(args))


def admin_client(args: argparse.Namespace) -> AdminClient:
    """A client on the admin endpoint with the command's timeout."""
    return AdminClient(args.admin_endpoint, timeout=args.timeout)
