"""Registers ``memosd bench`` and ``memosd eval`` on the CLI parser.

Only argument parsing and output live here; the work is in :mod:`.runner`
(bench) and :mod:`.evaluate` (eval). Progress goes to stderr so ``--json``
leaves stdout holding exactly one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..cli.output import progress_printer


def _int_list(text: str) -> list[int]:
    try:
        values = [int(float(part)) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


# --------------------------------------------------------------------------- bench


def cmd_bench_peers(args) -> int:
    from .peers import PeerBenchOptions, run_peer_bench
    from .report import print_peer_bench

    opts = PeerBenchOptions(k=args.k, seed=args.seed, dim=args.dim, store_dir=args.store_dir,
                            peers=[p.strip() for p in args.peers.split(",") if p.strip()])
    if args.sizes is not None:
        if len(args.sizes) != 1:
            raise ValueError("--peers compares the stores at one size: give one --sizes value")
        opts.size = args.sizes[0]
    if args.queries is not None:
        if args.queries < 1:
            raise ValueError("--queries must be positive")
        opts.queries = args.queries
    result = run_peer_bench(opts, progress_printer())
    if args.json:
        _print_json(result)
    else:
        print_peer_bench(result)
    return 0


def cmd_bench_cluster(args) -> int:
    from .cluster import ClusterBenchOptions, print_cluster_bench, run_cluster_bench

    result = run_cluster_bench(ClusterBenchOptions(nodes=args.nodes, size=args.size, queries=args.queries,
                                                   writers=args.writers, write_seconds=args.write_seconds,
                                                   takeover_writes=args.takeover_writes,
                                                   store_dir=args.store_dir), progress_printer())
    if args.json:
        _print_json(result)
    else:
        print_cluster_bench(result)
    return 0


def cmd_bench(args) -> int:
    from .report import print_bench
    from .runner import BenchOptions, run_bench

    if args.peers is not None:
        return cmd_bench_peers(args)

    opts = BenchOptions(
        k=args.k,
        data=args.data,
        seed=args.seed,
        endpoint=args.endpoint,
        admin_endpoint=args.admin_endpoint,
        key_file=getattr(args, "key_file", None),
        namespace=args.namespace or "memosd-bench",
        tcp=not args.no_tcp,
        writes=not args.no_writes,
        compare_no_fsync=not args.no_compare,
        concurrency=args.concurrency,
        store_dir=args.store_dir,
        keep=args.keep,
        restart=not args.no_restart,
        crash_writes=args.crash_writes,
        budget_bytes=args.budget_bytes,
    )
    if args.quick:
        # A smoke run: every phase once, small enough for a test suite (~15 s here).
        opts.sizes, opts.queries = [2_000], 300
        opts.single_writes, opts.batch_memories, opts.concurrent_writes = 100, 2_000, 300
    if args.sizes is not None:
        opts.sizes = args.sizes
    if args.queries is not None:
        opts.queries = args.queries
    if args.queries is not None and args.queries < 1:
        raise ValueError("--queries must be positive")
    result = run_bench(opts, progress_printer())
    if args.json:
        _print_json(result)
    else:
        print_bench(result)
    return 0


def cmd_bench_tiers(args) -> int:
    from .report import print_tier_bench
    from .tiers import TierBenchOptions, run_tier_bench

    opts = TierBenchOptions(budget_bytes=args.budget_bytes, data=args.data, seed=args.seed,
                            consolidate=not args.no_consolidate)
    if args.sizes is not None:
        opts.sizes = args.sizes
    if args.queries is not None:
        opts.queries = args.queries
    if args.busy_writes is not None:
        opts.busy_writes = args.busy_writes
    result = run_tier_bench(opts, progress_printer())
    if args.json:
        _print_json(result)
    else:
        print_tier_bench(result)
    return 0


def cmd_bench_slb(args) -> int:
    from .locomo import load_conversations
    from .report import print_slb_bench
    from .slb import run_slb_bench

    conversations = load_conversations(args.file)
    if args.conversations:
        conversations = conversations[: args.conversations]
    if args.similarity:
        from .report import print_query_similarity
        from .slb import query_similarity

        result = query_similarity(conversations, args.encoder)
        result["file"] = args.file
        _print_json(result) if args.json else print_query_similarity(result)
        return 0
    result = run_slb_bench(conversations, threshold=args.threshold, compare=args.compare,
                           budget_bytes=args.budget_bytes, think_ms=args.think_ms, say=progress_printer())
    result["file"] = args.file
    if args.json:
        _print_json(result)
    else:
        print_slb_bench(result)
    return 0


# --------------------------------------------------------------------------- eval


def cmd_eval_locomo(args) -> int:
    from rich.progress import Progress

    from ..testing import DaemonProcess
    from .conversation_report import print_per_conversation
    from .evaluate import evaluate, namespace_for, settle_daemon, tier_counters
    from .locomo import load_conversations
    from .report import print_locomo

    try:
        conversations = load_conversations(args.file)
    except (OSError, json.JSONDecodeError, AttributeError, TypeError) as exc:
        # main() turns ValueError into a one-line message and the usage exit code.
        raise ValueError(f"cannot read LoCoMo file {args.file}: {exc}") from None
    if not any(c.turns for c in conversations) or not any(q.evidence for c in conversations for q in c.questions):
        raise ValueError(f"{args.file}: no turns or no questions with evidence (is it a LoCoMo file?)")
    ks = args.k
    daemon = None
    endpoint = args.endpoint
    admin_endpoint = args.admin_endpoint
    say = progress_printer()
    if endpoint is None:
        say("starting a daemon on a temporary store")
        env = dict(pair.split("=", 1) for pair in args.daemon_env)
        if args.budget_bytes is not None:
            env["MEMOSD_TIERS_BUDGET_BYTES"] = str(args.budget_bytes)
        daemon = DaemonProcess(extra_args=["--no-fsync"] if args.no_fsync else [], env=env)
        try:
            daemon.start()
        except BaseException:
            daemon.cleanup()
            raise
        endpoint, admin_endpoint = daemon.endpoint, daemon.admin_endpoint
    from memosd_client import AdminClient, Client, CurveKeys

    key_file = getattr(args, "key_file", None)
    curve = CurveKeys.from_file(key_file) if key_file and endpoint.startswith("tcp://") else None
    questions = sum(1 for c in conversations for q in c.questions if q.evidence)
    namespaces = [namespace_for(c, args.prefix) for c in conversations]
    try:
        with Client(endpoint, timeout=max(args.timeout, 30.0), curve=curve) as client, \
                AdminClient(admin_endpoint, timeout=max(args.timeout, 30.0)) as admin, \
                Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
            tasks = {
                "ingest": progress.add_task("ingesting", total=len(conversations)),
                "ask": progress.add_task("asking", total=questions),
            }
            result = evaluate(client, conversations, ks, prefix=args.prefix, keep=True,
                              progress=lambda stage, n: progress.advance(tasks[stage], n),
                              settle=settle_daemon(admin, namespaces))
            result["daemon"].update(tier_counters(admin, namespaces))
            if args.purge_after:
                for namespace in namespaces:
                    client.purge_namespace(namespace=namespace)
    finally:
        if daemon is not None:
            daemon.cleanup()
    result["file"] = args.file
    result["endpoint"] = args.endpoint or "temporary daemon" + (" (--no-fsync)" if args.no_fsync else "")
    if args.json:
        _print_json(result)
    else:
        print_locomo(result)
        print_per_conversation(result)
    return 0


# --------------------------------------------------------------------------- registration


def add_bench_commands(sub, common) -> None:
    """Add ``bench`` and ``eval`` (with ``eval locomo``) to the ``memosd`` subparsers."""
    p = sub.add_parser(
        "bench", parents=[common], help="measure recall/remember latency and throughput over the real socket",
        description="Start a daemon on a temporary store (or use --endpoint) and measure, as the client sees "
                    "it: recall p50/p99 over ipc and tcp at each store size beside the bare pyzmq round trip, "
                    "remember latency and throughput (durable, and --no-fsync for comparison), store size "
                    "on disk and daemon RSS.")
    p.add_argument("--sizes", type=_int_list, default=None,
                   help="store sizes to measure recall at, one namespace (default 10000,100000)")
    p.add_argument("--queries", type=int, default=None, help="recalls per path per size (default 2000)")
    p.add_argument("-k", "--k", type=int, default=10, help="results per recall (default 10)")
    p.add_argument("--data", help="fill from a LoCoMo JSON file (turns cycled with variations) "
                                  "instead of the built-in text generator")
    p.add_argument("--quick", action="store_true", help="smoke run: 2000 memories, 300 queries, short write tests")
    p.add_argument("--no-writes", action="store_true", help="skip the remember measurements")
    p.add_argument("--no-compare", action="store_true", help="skip the --no-fsync daemon comparison")
    p.add_argument("--no-tcp", action="store_true", help="measure ipc only")
    p.add_argument("--concurrency", type=int, default=16, help="in-flight remembers for the concurrent case")
    p.add_argument("--store-dir", help="directory for the temporary stores (default: the system temp dir); "
                                       "its filesystem decides what an fsync costs")
    p.add_argument("--keep", action="store_true",
                   help="with --endpoint: leave the benchmark namespace filled (default: purge it at the end)")
    p.add_argument("--peers", nargs="?", const="memosd,memosd-hnsw,chromadb,lancedb,numpy", default=None, metavar="LIST",
                   help="instead: compare memosd (daemon over ipc) with chromadb and lancedb in-process and "
                        "numpy exact search, same vectors and queries (default LIST: memosd,memosd-hnsw,chromadb,lancedb,numpy; "
                        "one --sizes value, default 100000; --queries default 1000); a peer whose package is "
                        "missing is skipped (pip install 'memosd[peers]'; memosd-hnsw: the memosd-ann plugin)")
    p.add_argument("--dim", type=int, default=384, help="with --peers: vector dimension (default 384)")
    p.add_argument("--no-restart", action="store_true",
                   help="skip the restart measurement (stop, start on the same store, first recall answered)")
    p.add_argument("--budget-bytes", type=int, default=None,
                   help="tiers.budget_bytes of the daemon started for the recall measurements (default: the "
                        "daemon's own, 256 MiB); its resident page vectors are part of the anon RSS reported")
    p.add_argument("--crash-writes", type=int, default=1000, metavar="N",
                   help="memories written (10 to a request) between the snapshot taken while serving and the "
                        "kill -9 of the restart measurement (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cmd_bench)

    p = sub.add_parser(
        "bench-tiers", parents=[common], help="memory tiers at scale: resident bytes vs store, faults, "
                                               "recall latency with the scheduler idle and busy",
        description="For each size, a fresh daemon with a residency budget: fill, wait for the scheduler, "
                    "report store size vs resident bytes, recall p50/p99 and fault rate, then recall again "
                    "while the scheduler pages and consolidates a further batch (busy vs idle).")
    p.add_argument("--sizes", type=_int_list, default=None, help="store sizes (default 100000,1000000)")
    p.add_argument("--budget-bytes", type=int, default=32 * 1024 * 1024,
                   help="tiers.budget_bytes of the daemons (default 32 MiB)")
    p.add_argument("--queries", type=int, default=None, help="recalls per phase (default 1000)")
    p.add_argument("--busy-writes", type=int, default=None,
                   help="memories written to make the scheduler busy (default 20000)")
    p.add_argument("--no-consolidate", action="store_true", help="page only, no consolidation")
    p.add_argument("--data", help="fill from a LoCoMo JSON file instead of the built-in text generator")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cmd_bench_tiers)

    p = sub.add_parser(
        "bench-cluster", help="what the cluster's log costs: a single node, then 1, 2 and 3 cluster nodes "
                              "on three NATS servers, same workload",
        description="Start a single daemon, then clusters of memosd nodes on a three-server NATS cluster (log "
                    "replicas 3), all on this machine; run `memosd bench --endpoint` against each (recall and "
                    "remember latency and throughput) and an aggregate write test through every node. Every "
                    "process shares this machine's cores: the figures show the log's cost, not scaling.")
    p.add_argument("--nodes", type=_int_list, default=[1, 2, 3], help="cluster sizes (default 1,2,3)")
    p.add_argument("--size", type=int, default=10_000, help="memories in the bench namespace (default 10000)")
    p.add_argument("--queries", type=int, default=500, help="recalls per configuration (default 500)")
    p.add_argument("--writers", type=int, default=4, help="clients of the aggregate write test (default 4)")
    p.add_argument("--write-seconds", type=float, default=10.0, help="length of the aggregate write test")
    p.add_argument("--takeover-writes", type=int, default=2_000,
                   help="memories written before a namespace's owner is stopped and another node replays them "
                        "(clusters of 2+ nodes; 0 skips it)")
    p.add_argument("--store-dir", help="directory for the temporary stores (default: the system temp dir)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(handler=cmd_bench_cluster)

    p = sub.add_parser(
        "bench-slb", parents=[common], help="the semantic lookaside buffer on LoCoMo query streams, on vs off",
        description="Two temporary daemons (buffer on / off) get the same writes and queries: workload 1 asks "
                    "each conversation's questions in order, workload 2 replays each conversation recalling "
                    "with every turn before remembering it. Reports hit rate, recall p50/p99 and top-10 "
                    "agreement with the buffer off.")
    p.add_argument("file", help="LoCoMo JSON file")
    p.add_argument("--threshold", type=float, default=None, help="slb.threshold of the buffered daemon")
    p.add_argument("--conversations", type=int, default=0, help="use only the first N conversations")
    p.add_argument("--compare", choices=["buffer", "prefetch"], default="buffer",
                   help="what differs between the two daemons: the buffer (default) or prefetching")
    p.add_argument("--budget-bytes", type=int, default=None,
                   help="tiers.budget_bytes of both daemons (prefetching matters only when pages get evicted)")
    p.add_argument("--think-ms", type=float, default=0.0,
                   help="pause before each recall, the agent's own work between two steps (default 0)")
    p.add_argument("--similarity", action="store_true",
                   help="instead of running daemons, report how close each query is to the nearest earlier one "
                        "(the best hit rate any buffer keyed by query vectors can reach)")
    p.add_argument("--encoder", default="", help="with --similarity: measure an encoder plugin's embeddings")
    p.set_defaults(handler=cmd_bench_slb)

    e = sub.add_parser("eval", help="retrieval-quality evaluations", description="Retrieval-quality evaluations.")
    esub = e.add_subparsers(dest="eval_target", required=True, metavar="DATASET")
    p = esub.add_parser(
        "locomo", parents=[common], help="LoCoMo evidence recall@k through the daemon",
        description="Ingest each LoCoMo conversation into its own namespace (one memory per turn) and score "
                    "evidence recall@k of every question with evidence. Without --endpoint, a daemon is "
                    "started on a temporary store and stopped afterwards.")
    p.add_argument("file", help="LoCoMo JSON file (a list of samples)")
    p.add_argument("--k", type=_int_list, default=[5, 10], help="comma-separated k values (default 5,10)")
    p.add_argument("--prefix", default="locomo-", help="namespace prefix (namespace = prefix + sample_id)")
    p.add_argument("--purge-after", action="store_true", help="purge the conversation namespaces afterwards")
    p.add_argument("--no-fsync", action="store_true", help="start the temporary daemon with --no-fsync")
    p.add_argument("--budget-bytes", type=int, default=None,
                   help="residency budget of the temporary daemon's page vectors (tiers.budget_bytes)")
    p.add_argument("--daemon-env", action="append", default=[], metavar="MEMOSD_X=V",
                   help="extra environment (settings) for the temporary daemon; repeatable")
    p.set_defaults(handler=cmd_eval_locomo)
