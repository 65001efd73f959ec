"""``memosd mcp``: the Model Context Protocol server (stdio by default, streamable HTTP with --http).

Registered by :func:`add_mcp_command`; the MCP SDK is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys

from memosd_client import AdminClient, CurveKeys
from memosd_client.endpoints import default_endpoint

from ..cli.output import ExitCode


def add_mcp_command(sub, common: argparse.ArgumentParser) -> None:
    """Add ``memosd mcp`` to the ``memosd`` parser."""
    p = sub.add_parser("mcp", parents=[common], help="serve memosd to MCP clients (stdio, or streamable HTTP)",
                       description="An MCP server for memosd, bound to one namespace: stdio by default "
                                   "(memosd mcp --namespace NS), streamable HTTP with --http HOST:PORT "
                                   "(bearer key required; see docs/mcp.md).")
    p.add_argument("--http", metavar="HOST:PORT", help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio")
    p.add_argument("--start-daemon", action="store_true",
                   help="start `memosd serve` (detached, default data dir) if no daemon answers; this is also "
                        "done on stdio when --endpoint is not given")
    p.add_argument("--server-key", help="the daemon's CURVE public key, for --http (default: asked from the admin "
                                        "endpoint); write --server-key=KEY, as a key may begin with '-'")
    p.add_argument("--print-token", action="store_true",
                   help="print the bearer token of the key in --key-file for --http clients, and exit")
    p.set_defaults(handler=cmd_mcp)


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"--http expects HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def cmd_mcp(args) -> int:
    if args.print_token:
        from .auth import token_for

        if not args.key_file:
            raise ValueError("--print-token needs --key-file FILE (written by memosd keys create -o FILE)")
        print(token_for(CurveKeys.from_file(args.key_file)))
        return ExitCode.OK
    if args.http:
        return _serve_http(args, *_host_port(args.http))
    return _serve_stdio(args)


def _serve_stdio(args) -> int:
    import anyio

    from .daemon_link import Binding, DaemonLink, ensure_daemon
    from .server import build_server
    from .tools import ServerState

    if not args.namespace:
        print("memosd mcp: --namespace (or $MEMOSD_NAMESPACE) is required on stdio", file=sys.stderr)
        return ExitCode.USAGE
    endpoint = args.endpoint or default_endpoint()
    curve = CurveKeys.from_file(args.key_file) if args.key_file else None
    if args.start_daemon or args.endpoint is None:
        try:
            if ensure_daemon(endpoint, curve=curve):
                print(f"memosd mcp: started memosd serve on {endpoint}", file=sys.stderr)
        except RuntimeError as exc:
            # Serve anyway: each tool call then reports the daemon as unreachable (CONNECTION).
            print(f"memosd mcp: {exc}", file=sys.stderr)
    binding = Binding(namespace=args.namespace, curve=curve)
    state = ServerState(link=DaemonLink(endpoint, timeout=args.timeout), resolve=lambda _headers: binding)
    server = build_server(state)

    async def run() -> None:
        try:
            await server.run_stdio_async()
        finally:
            await state.link.aclose()

    anyio.run(run)
    return ExitCode.OK


def _daemon_tcp_settings(args) -> tuple[str, str]:
    """The daemon's CURVE TCP endpoint and public key: from the flags, else from its admin endpoint."""
    from memosd_client.protocol import messages as m

    endpoint, server_key = args.endpoint, args.server_key
    if endpoint is None or server_key is None:
        with AdminClient(args.admin_endpoint, timeout=args.timeout, retries=0) as admin:
            if endpoint is None:
                tcp = [e for e in admin.status().endpoints if e.startswith("tcp://")]
                if not tcp:
                    raise ValueError("the daemon listens on no tcp:// endpoint: start it with "
                                     "--listen tcp://HOST:PORT and [security] curve = true, or pass --endpoint")
                endpoint = tcp[0]
            if server_key is None:
                server_key = admin.request("keys_list", m.KeysListArgs()).server_public_key
    if not endpoint.startswith("tcp://"):
        raise ValueError(f"--http needs the daemon's CURVE tcp:// endpoint, not {endpoint}")
    return endpoint, server_key


def _serve_http(args, host: str, port: int) -> int:
    import anyio
    import uvicorn

    from .auth import BearerKeyMiddleware, KeyVerifier, http_binding
    from .daemon_link import DaemonLink
    from .server import build_server
    from .tools import ServerState

    endpoint, server_key = _daemon_tcp_settings(args)
    default_namespace = args.namespace

    def resolve(headers):
        # The middleware already refused requests without a valid key: this cannot fail here.
        return http_binding(headers or {}, default_namespace, server_key)

    state = ServerState(link=DaemonLink(endpoint, timeout=args.timeout), resolve=resolve)
    server = build_server(state)
    app = BearerKeyMiddleware(server.streamable_http_app(host=host), verifier=KeyVerifier(endpoint),
                              server_public_key=server_key, default_namespace=default_namespace)
    print(f"memosd mcp: streamable HTTP on http://{host}:{port}/mcp for the daemon at {endpoint} "
          f"(namespace: header X-Memosd-Namespace, default {default_namespace!r})", file=sys.stderr, flush=True)

    async def run() -> None:
        try:
            await uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).serve()
        finally:
            await state.link.aclose()

    anyio.run(run)
    return ExitCode.OK
