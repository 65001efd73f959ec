"""``memosd``: run the daemon and use it from a terminal.

Every command that reads accepts ``--json``; exit codes are listed in
:class:`memosd.cli.output.ExitCode`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import msgspec
import zmq

from memosd_client.protocol import OPERATIONS
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import MemosdError

from .connection import admin_client, agent_client
from .output import ExitCode, exit_code_for, memory_line, parse_time, print_json

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def register(fn):
        COMMANDS[name] = fn
        return fn

    return register


def _filters(args) -> m.Filters:
    return m.Filters(
        session=getattr(args, "session", None),
        source=getattr(args, "source", None),
        tags=list(getattr(args, "tag", None) or []),
        tier=getattr(args, "tier", None),
        after=parse_time(args.after) if getattr(args, "after", None) else None,
        before=parse_time(args.before) if getattr(args, "before", None) else None,
    )


# --------------------------------------------------------------------------- daemon


@command("serve")
def cmd_serve(args) -> int:
    from ..config import ConfigError, load_config
    from ..daemon import serve
    from ..logs import configure_logging
    from ..store import StoreError

    overrides = {}
    if args.data_dir:
        overrides["store.data_dir"] = args.data_dir
    if args.listen:
        overrides["server.endpoints"] = args.listen
    if args.admin_listen:
        overrides["server.admin_endpoint"] = args.admin_listen
    if args.log_format:
        overrides["log.format"] = args.log_format
    if args.log_level:
        overrides["log.level"] = args.log_level
    if args.no_fsync:
        overrides["store.durable"] = False
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"memosd: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    configure_logging(config.log.level, config.log.format)
    try:
        return serve(config, lambda: load_config(args.config, overrides=overrides))
    except (StoreError, ConfigError, PermissionError) as exc:
        print(f"memosd: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    except zmq.ZMQError as exc:  # e.g. an endpoint already in use or not bindable
        print(f"memosd: cannot listen: {exc}", file=sys.stderr)
        return ExitCode.ERROR


@command("status")
def cmd_status(args) -> int:
    with admin_client(args) as admin:
        status = admin.status()
    if args.json:
        print_json(status)
    else:
        for field in status.__struct_fields__:
            print(f"{field:16} {getattr(status, field)}")
    return ExitCode.OK


HEALTH_LIMITS = {"writer_heartbeat_age_s": 10.0, "loop_lag_ms": 1000.0, "map_used_ratio": 0.95,
                 "disk_free_bytes": 100 << 20}


def health_checks(status) -> dict[str, dict]:
    """Each check: ok, the observed value and its limit (used by `memosd health`)."""
    map_ratio = status.map_used_bytes / status.map_size_bytes if status.map_size_bytes else 0.0
    checks = {
        "writer_alive": {"ok": status.writer_alive, "value": status.writer_alive},
        "writer_heartbeat_age_s": {"ok": status.writer_heartbeat_age_s < HEALTH_LIMITS["writer_heartbeat_age_s"],
                                   "value": status.writer_heartbeat_age_s},
        "loop_lag_ms": {"ok": status.loop_lag_ms < HEALTH_LIMITS["loop_lag_ms"], "value": status.loop_lag_ms},
        "map_used_ratio": {"ok": map_ratio < HEALTH_LIMITS["map_used_ratio"], "value": round(map_ratio, 4)},
        "disk_free_bytes": {"ok": status.disk_free_bytes > HEALTH_LIMITS["disk_free_bytes"],
                            "value": status.disk_free_bytes},
    }
    for name, check in checks.items():
        if name in HEALTH_LIMITS:
            check["limit"] = HEALTH_LIMITS[name]
    if status.mqtt:
        # A broker outage degrades events but never the daemon: reported, not failed.
        checks["mqtt_connected"] = {"ok": True, "value": bool(status.mqtt.get("connected")),
                                    "queued": status.mqtt.get("queued", 0), "dropped": status.mqtt.get("dropped", 0)}
    if status.cluster is not None:
        # A node cut off from NATS can neither write nor keep its leases.
        checks["cluster_connected"] = {"ok": status.cluster.connected, "value": status.cluster.connected,
                                       "nodes": len(status.cluster.nodes), "owned": len(status.cluster.owned)}
    if status.plugin_errors or status.migration is not None:
        # A failed plugin is bypassed and the daemon serves with its defaults: reported, not failed.
        checks["plugins"] = {"ok": True, "value": [f"{p.group}:{p.name}" for p in status.plugin_errors],
                             "errors": {p.name: p.error for p in status.plugin_errors}}
        if status.migration is not None:
            checks["plugins"]["embedding"] = status.migration.state
    return checks


@command("health")
def cmd_health(args) -> int:
    try:
        with admin_client(args) as admin:
            status = admin.status()
    except MemosdError as err:
        report = {"healthy": False, "error": str(err)}
        print_json(report) if args.json else print(f"unhealthy: {err}")
        return ExitCode.UNREACHABLE
    checks = health_checks(status)
    healthy = all(check["ok"] for check in checks.values())
    if args.json:
        print_json({"healthy": healthy, "checks": checks, "status": status})
    else:
        print("healthy" if healthy else "unhealthy: " + ", ".join(k for k, c in checks.items() if not c["ok"]))
    return ExitCode.OK if healthy else ExitCode.UNHEALTHY


@command("keys")
def cmd_keys(args) -> int:
    from ..security.grants import parse_grant

    with admin_client(args) as admin:
        if args.keys_command == "create":
            grants = [parse_grant(text) for text in args.grant or []]
            created = admin.request("keys_create", m.KeysCreateArgs(name=args.name, grants=grants))
            if not created.secret_key:  # unix:<user>: grants for that user's ipc clients, no key to keep
                if args.output:
                    print("a Unix user's grants have no key file; nothing written", file=sys.stderr)
                print_json({"name": created.name, "grants": created.grants})
                return ExitCode.OK
            document = {"name": created.name, "public_key": created.public_key, "secret_key": created.secret_key,
                        "server_public_key": created.server_public_key}
            if args.output:
                fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(msgspec.json.format(msgspec.json.encode(document)) + b"\n")
                print(f"key {created.name!r} written to {args.output} (keep it secret)", file=sys.stderr)
            else:
                print_json(document)
        elif args.keys_command == "list":
            listing = admin.request("keys_list", m.KeysListArgs())
            if args.json:
                print_json(listing)
            else:
                print(f"server public key: {listing.server_public_key}")
                for key in listing.keys:
                    state = "revoked" if key.revoked_at is not None else "active"
                    grants = ", ".join(f"{g.namespace}:{g.rights}" for g in key.grants)
                    print(f"{key.name}\t{state}\t{key.public_key or '-'}\t{grants}")
        else:
            admin.request("keys_revoke", m.KeysRevokeArgs(name=args.name))
            print(f"revoked {args.name}", file=sys.stderr)
    return ExitCode.OK


@command("top")
def cmd_top(args) -> int:
    from .top import run_top

    run_top(args.admin_endpoint, args.interval, args.once, args.timeout)
    return ExitCode.OK


@command("stop")
def cmd_stop(args) -> int:
    with admin_client(args) as admin:
        admin.shutdown()
    return ExitCode.OK


@command("snapshot")
def cmd_snapshot(args) -> int:
    with admin_client(args) as admin:
        result = admin.snapshot()
    if args.json:
        print_json(result)
    else:
        print(f"index snapshot of {result.namespaces} namespaces written in {result.seconds:.2f} s")
    return ExitCode.OK


# --------------------------------------------------------------------------- memories


@command("remember")
def cmd_remember(args) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    meta = {}
    for pair in args.meta or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--meta expects key=value, got {pair!r}")
        meta[key] = value
    with agent_client(args) as client:
        memory_id = client.remember(
            text,
            meta=meta,
            tags=args.tag or [],
            session=args.session,
            source=args.source,
            event_time=parse_time(args.event_time) if args.event_time else None,
            idempotency_key=args.idempotency_key,
        )
    print_json({"id": memory_id}) if args.json else print(memory_id)
    return ExitCode.OK


@command("recall")
def cmd_recall(args) -> int:
    with agent_client(args) as client:
        hits = client.recall(args.query, k=args.k, filters=_filters(args),
                             as_of=parse_time(args.as_of) if args.as_of else None)
    if args.json:
        print_json(hits)
    else:
        for hit in hits:
            print(f"{hit.rank:>3}  {hit.score:.4f}  [{'+'.join(hit.matched)}]  {memory_line(hit.memory)}")
    return ExitCode.OK


@command("get")
def cmd_get(args) -> int:
    with agent_client(args) as client:
        mem = client.get(args.id)
    print_json(mem) if args.json else print(memory_line(mem))
    return ExitCode.OK


@command("history")
def cmd_history(args) -> int:
    with agent_client(args) as client:
        versions = client.history(args.id)
    if args.json:
        print_json(versions)
    else:
        for mem in versions:
            print(memory_line(mem))
    return ExitCode.OK


@command("list")
def cmd_list(args) -> int:
    with agent_client(args) as client:
        page = client.list(cursor=args.cursor, limit=args.limit, filters=_filters(args),
                           include_forgotten=args.include_forgotten, include_superseded=args.include_superseded)
    if args.json:
        print_json(page)
    else:
        for mem in page.memories:
            print(memory_line(mem))
        if page.next_cursor is not None:
            print(f"# more: --cursor {page.next_cursor}", file=sys.stderr)
    return ExitCode.OK


@command("update")
def cmd_update(args) -> int:
    with agent_client(args) as client:
        new_id = client.update(args.id, args.text, reason=args.reason)
    print_json({"id": new_id, "supersedes": args.id}) if args.json else print(new_id)
    return ExitCode.OK


def _id_change(args, method: str) -> int:
    with agent_client(args) as client:
        result = getattr(client, method)(args.ids)
    if args.json:
        print_json(result)
    else:
        for memory_id in result.missing:
            print(f"not found: {memory_id}", file=sys.stderr)
    return ExitCode.NOT_FOUND if result.missing else ExitCode.OK


@command("forget")
def cmd_forget(args) -> int:
    return _id_change(args, "forget")


@command("unforget")
def cmd_unforget(args) -> int:
    return _id_change(args, "unforget")


@command("purge")
def cmd_purge(args) -> int:
    if args.all:
        if not args.yes:
            print(f"refusing to purge namespace {args.namespace!r} without --yes", file=sys.stderr)
            return ExitCode.USAGE
        with agent_client(args) as client:
            purged = client.purge_namespace()
        print_json({"purged": purged}) if args.json else print(f"purged {purged} versions")
        return ExitCode.OK
    if not args.ids:
        print("purge needs ids or --all --yes", file=sys.stderr)
        return ExitCode.USAGE
    return _id_change(args, "purge")


@command("stats")
def cmd_stats(args) -> int:
    with agent_client(args) as client:
        stats = client.stats(all_namespaces=args.namespace is None)
    if args.json:
        print_json(stats)
        return ExitCode.OK
    from rich.console import Console
    from rich.table import Table

    table = Table("namespace", "memories", "current", "superseded", "forgotten", "index bytes")
    for ns in stats.namespaces:
        table.add_row(ns.name, str(ns.memories), str(ns.current), str(ns.superseded), str(ns.forgotten),
                      f"{ns.index_bytes:,}")
    console = Console()
    console.print(table)
    console.print(f"store: {stats.store_bytes:,} bytes used of a {stats.map_bytes:,}-byte map")
    return ExitCode.OK


# --------------------------------------------------------------------------- export / import


@command("export")
def cmd_export(args) -> int:
    out = sys.stdout.buffer if args.output in (None, "-") else open(args.output, "wb")
    encode = msgspec.json.encode if args.format == "jsonl" else msgspec.msgpack.encode
    count = 0
    try:
        with agent_client(args) as client:
            for mem in client.export():
                out.write(encode(mem) + (b"\n" if args.format == "jsonl" else b""))
                count += 1
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    print(f"exported {count} versions", file=sys.stderr)
    return ExitCode.OK


def _read_export(path: str, fmt: str):
    """Yield the versions of an export file (JSON lines, or concatenated MessagePack maps)."""
    with open(path, "rb") as fh:
        if fmt == "jsonl":
            decoder = msgspec.json.Decoder(m.Memory)
            for line in fh:
                if line.strip():
                    yield decoder.decode(line)
        else:
            import msgpack  # streams a concatenation of maps, which msgspec does not

            for obj in msgpack.Unpacker(fh, raw=False):
                yield msgspec.convert(obj, m.Memory)


@command("import")
def cmd_import(args) -> int:
    from rich.progress import Progress

    memories = list(_read_export(args.file, args.format))
    with agent_client(args) as client, Progress(transient=not sys.stderr.isatty()) as progress:
        task = progress.add_task("importing", total=len(memories))
        result = client.import_(memories, progress=lambda n: progress.advance(task, n))
    print_json(result) if args.json else print(f"imported {result.imported}, skipped {result.skipped}")
    return ExitCode.OK


@command("protocol-doc")
def cmd_protocol_doc(args) -> int:
    from .protocol_doc import render

    sys.stdout.write(render())
    return ExitCode.OK


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memosd", description="memosd: a memory daemon for LLM agents")
    parser.add_argument("--version", action="version", version=f"memosd {__import__('memosd').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--endpoint", default=None, help="daemon endpoint (default: $MEMOSD_ENDPOINT or the ipc socket)")
    common.add_argument("--admin-endpoint", default=None, help="admin endpoint")
    common.add_argument("-n", "--namespace", default=os.environ.get("MEMOSD_NAMESPACE"),
                        help="namespace (default: $MEMOSD_NAMESPACE)")
    common.add_argument("--timeout", type=float, default=10.0, help="seconds per attempt")
    common.add_argument("--key-file", help="CURVE key file for a TCP endpoint (default: $MEMOSD_KEY_FILE)")
    common.add_argument("--json", action="store_true", help="print JSON")

    def add(name: str, help_text: str | None = None, **kw) -> argparse.ArgumentParser:
        summary = help_text or OPERATIONS[name].summary
        return sub.add_parser(name, parents=[common], help=summary, description=summary, **kw)

    def add_filters(p):
        p.add_argument("--session")
        p.add_argument("--source")
        p.add_argument("--tag", action="append")
        p.add_argument("--tier", choices=["stm", "mtm", "ltm"])
        p.add_argument("--after", help="event time lower bound (epoch or ISO 8601)")
        p.add_argument("--before", help="event time upper bound (epoch or ISO 8601)")

    p = sub.add_parser("serve", help="run the daemon in the foreground")
    p.add_argument("--config", help="TOML config file")
    p.add_argument("--data-dir")
    p.add_argument("--listen", action="append", help="agent endpoint (repeatable), e.g. tcp://127.0.0.1:7707")
    p.add_argument("--admin-listen", help="admin endpoint")
    p.add_argument("--log-format", choices=["json", "console"])
    p.add_argument("--log-level")
    p.add_argument("--no-fsync", action="store_true", help="faster, survives process crashes but not power loss")

    add("status", "daemon status (admin endpoint)")
    add("health", "exit 0 when healthy, 7 when not, 4 when unreachable")
    add("stop", "ask the daemon to stop cleanly")
    add("snapshot", "write the index snapshot now, while serving: the next start, even after a crash, "
                    "brings forward only what is written after it")
    p = add("keys", "CURVE client keys for TCP endpoints and Unix users' grants on ipc: create, list, revoke "
                    "(admin endpoint)")
    keys_sub = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", parents=[common], help="create a key; prints or writes the key file")
    create.add_argument("name", help="the key's name, or unix:USER to grant namespaces to that Unix user's ipc "
                                     "clients (no key: the kernel tells the daemon who connects)")
    create.add_argument("--grant", action="append", required=True,
                        help="NAMESPACE_PATTERN:RIGHT (read, write or admin); repeatable, e.g. 'agent-*:write'")
    create.add_argument("-o", "--output", help="write the key file here (mode 0600) instead of printing it")
    keys_sub.add_parser("list", parents=[common], help="list keys and the server's public key")
    revoke = keys_sub.add_parser("revoke", parents=[common], help="revoke a key")
    revoke.add_argument("name")
    p = add("top", "live view of requests, latency and namespaces")
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--once", action="store_true", help="print one frame and exit")

    p = add("remember")
    p.add_argument("text", help="the memory text, or - to read stdin")
    p.add_argument("--tag", action="append")
    p.add_argument("--session")
    p.add_argument("--source")
    p.add_argument("--event-time")
    p.add_argument("--meta", action="append", help="key=value (repeatable)")
    p.add_argument("--idempotency-key")

    p = add("recall")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--as-of", help="answer as the store was at this time")
    add_filters(p)

    p = add("get")
    p.add_argument("id", type=int)
    p = add("history")
    p.add_argument("id", type=int)

    p = add("list")
    p.add_argument("--cursor", type=int)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--include-forgotten", action="store_true")
    p.add_argument("--include-superseded", action="store_true")
    add_filters(p)

    p = add("update")
    p.add_argument("id", type=int)
    p.add_argument("text")
    p.add_argument("--reason")

    for name in ("forget", "unforget"):
        p = add(name)
        p.add_argument("ids", type=int, nargs="+")
    p = add("purge")
    p.add_argument("ids", type=int, nargs="*")
    p.add_argument("--all", action="store_true", help="purge the whole namespace")
    p.add_argument("--yes", action="store_true", help="confirm --all")

    add("stats", "counts and sizes (one namespace with -n, else all)")

    p = add("export", "write every stored version of a namespace (JSONL or msgpack)")
    p.add_argument("-o", "--output", help="file (default: stdout)")
    p.add_argument("--format", choices=["jsonl", "msgpack"], default="jsonl")
    p = add("import", "load an export into a namespace, keeping ids")
    p.add_argument("file")
    p.add_argument("--format", choices=["jsonl", "msgpack"], default="jsonl")

    sub.add_parser("protocol-doc", help="print the generated protocol reference (docs/protocol.md)")

    from ..bench.cli import add_bench_commands

    add_bench_commands(sub, common)
    from .maintenance import add_maintenance_commands

    add_maintenance_commands(sub, common)
    from ..plugins.cli import add_plugins_command

    add_plugins_command(sub, common)
    from ..tiers.cli import add_tiers_commands

    add_tiers_commands(sub, common)
    from ..cluster.cli import add_cluster_commands

    add_cluster_commands(sub, common)
    from ..reliability.cli import add_reliability_commands

    add_reliability_commands(sub, common)
    from ..mcp.cli import add_mcp_command

    add_mcp_command(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = COMMANDS.get(args.command) or getattr(args, "handler", None)
    try:
        return handler(args)
    except MemosdError as err:
        print(f"memosd: {err}", file=sys.stderr)
        return exit_code_for(err)
    except ValueError as err:
        print(f"memosd: {err}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return ExitCode.OK
