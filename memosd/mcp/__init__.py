"""``memosd mcp``: a Model Context Protocol server for memosd, on the official ``mcp`` SDK.

A client of a running daemon (through :mod:`memosd_client`), bound to one namespace per server
(stdio) or per HTTP session; over HTTP the bearer token is a daemon CURVE key, so the daemon's
own grants decide. See docs/mcp.md.

Modules: ``tools`` (the typed tool functions), ``models`` (their structured results),
``server`` (the SDK server and error mapping), ``auth`` (bearer keys over HTTP),
``daemon_link`` (clients of the daemon, starting one), ``cli`` (the command).
"""
