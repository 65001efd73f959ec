"""``memosd cluster status``: one node's view of its cluster."""

from __future__ import annotations

from memosd_client import AdminClient

from ..cli.output import ExitCode, print_json


def cmd_cluster_status(args) -> int:
    """The live nodes, and the namespaces this node owns with their log position and lease."""
    with AdminClient(args.admin_endpoint, timeout=args.timeout) as admin:
        status = admin.status()
    info = status.cluster
    if args.json:
        print_json(info)
        return ExitCode.OK
    if info is None:
        print("this daemon is not in cluster mode ([cluster] enabled = false)")
        return ExitCode.OK
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"node {info.node} at {info.endpoint}; NATS {'connected' if info.connected else 'DISCONNECTED'}; "
                  f"took over {info.takeovers}, handed over {info.handed_over}, lost {info.lost}; "
                  f"answered MOVED {info.moved}, UNAVAILABLE {info.unavailable}")
    live = {node.name for node in info.nodes}
    nodes = Table("node", "endpoint", "version", "namespaces held", title="nodes")
    for node in info.nodes:
        nodes.add_row(node.name, node.endpoint, node.version, f"{info.namespaces_per_node.get(node.name, 0):,}")
    for name, count in sorted(info.namespaces_per_node.items()):
        if name not in live:
            nodes.add_row(name, "-", "-", f"{count:,} (not live: taken over on their next request)")
    console.print(nodes)
    if info.log is not None:
        log = Table("replica", "role", "current", "lag", "last heard",
                    title=f"log {info.log.name}: {info.log.messages:,} entries, {info.log.bytes:,} B")
        for replica in info.log.replicas:
            log.add_row(replica.name, "leader" if replica.leader else "follower", "yes" if replica.current else "NO",
                        f"{replica.lag:,}", "-" if replica.active_s is None else f"{replica.active_s:.1f} s ago")
        console.print(log)
    owned = Table("namespace", "log seq", "pending", "lease", "lease valid for", "ready", "replayed", "appended",
                  title=f"namespaces owned by {info.node}")
    for ns in info.owned:
        owned.add_row(ns.namespace, f"{ns.log_seq:,}", f"{ns.pending:,}", str(ns.lease), f"{ns.lease_valid_s:.1f} s",
                      "yes" if ns.ready else "no", f"{ns.replayed_entries:,}", f"{ns.appended_entries:,}")
    console.print(owned)
    return ExitCode.OK


def add_cluster_commands(sub, common) -> None:
    p = sub.add_parser("cluster", help="cluster mode: nodes and namespace ownership (docs/cluster.md)")
    actions = p.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    status = actions.add_parser("status", parents=[common],
                                help="the live nodes, and the namespaces this node owns with log position and lease")
    status.set_defaults(handler=cmd_cluster_status)
