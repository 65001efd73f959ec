"""Registers ``memosd reliability {crash,load,fuzz,fairness,soak,cluster,all}`` on the CLI parser.

Each suite starts its own daemon(s) on temporary stores, so the command takes
no endpoint. Progress goes to stderr; with ``--json`` stdout holds exactly one
JSON object. The exit code is 0 when every bar was met and 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

from ..cli.output import progress_printer
from . import SUITES

QUICK = {"cycles": 3, "load_seconds": 5.0, "seed_memories": 500, "cases": 2_000, "fairness_seconds": 6.0,
         "soak_seconds": 10.0, "window": 2_000, "cluster_seconds": 10.0}
# Issue-level bar for the full run: >= 100 kill -9 cycles and >= 1,000,000 fuzzed frames (a case is at
# least one frame). On a 2-core machine the fuzz part alone takes about an hour.
FULL = {"cycles": 100, "load_seconds": 30.0, "seed_memories": 2_000, "cases": 1_000_000,
        "fairness_seconds": 30.0, "soak_seconds": 120.0, "window": 5_000, "cluster_seconds": 30.0}

FLOOD_PER_S = 100_000 / 30
"""Flood recalls per second of the fairness suite's flood phase."""


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def _run_suite(name: str, args, plan: dict, say):
    if name == "crash":
        from .crash import CrashOptions, run_crash

        return run_crash(CrashOptions(cycles=plan["cycles"], store_dir=args.store_dir, seed=args.seed), say)
    if name == "load":
        from .load import LoadOptions, run_load

        return run_load(LoadOptions(clients=args.clients, duration_s=plan["load_seconds"],
                                    seed_memories=plan["seed_memories"], store_dir=args.store_dir,
                                    seed=args.seed), say)
    if name == "fuzz":
        from .fuzz import FuzzOptions, run_fuzz

        return run_fuzz(FuzzOptions(cases=plan["cases"], store_dir=args.store_dir, seed=args.seed), say)
    if name == "fairness":
        from .fairness import FairnessOptions, run_fairness

        # The flood scales with the phase: 100,000 recalls in the full run's 30 s, 20,000 in the quick 6 s.
        # Taking a flood off the socket costs the same whatever the phase length, so a fixed flood would
        # weigh five times more in a short phase than the bar was set for.
        flood = max(1_000, round(plan["fairness_seconds"] * FLOOD_PER_S))
        return run_fairness(FairnessOptions(duration_s=plan["fairness_seconds"], seed_memories=plan["seed_memories"],
                                            flood_requests=flood, store_dir=args.store_dir, seed=args.seed), say)
    if name == "cluster":
        from .cluster import ClusterOptions, run_cluster

        return run_cluster(ClusterOptions(phase_s=plan["cluster_seconds"], store_dir=args.store_dir, seed=args.seed),
                           say)
    from .soak import SoakOptions, run_soak

    return run_soak(SoakOptions(duration_s=plan["soak_seconds"], window=plan["window"], store_dir=args.store_dir,
                                seed=args.seed), say)


def cmd_reliability(args) -> int:
    """Run the chosen suite(s); exit 0 only when every bar is met."""
    from .report import print_results

    plan = dict(QUICK if args.quick else FULL)
    for key in ("cycles", "cases", "load_seconds", "fairness_seconds", "soak_seconds", "cluster_seconds"):
        if getattr(args, key) is not None:
            plan[key] = getattr(args, key)
    names = list(SUITES) if args.suite == "all" else [args.suite]
    say = progress_printer()
    results = []
    for name in names:
        say(f"{name}: starting")
        result = _run_suite(name, args, plan, say)
        say(f"{name}: {'PASS' if result.passed else 'FAIL'} in {result.seconds:.1f} s")
        results.append(result)
    passed = all(r.passed for r in results)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
               "memosd": __import__("memosd").__version__}
    if args.json:
        json.dump({"passed": passed, "quick": args.quick, "machine": machine,
                   "suites": {r.suite: r.to_dict() for r in results}}, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print_results(results, f"{'quick' if args.quick else 'full'} run, {machine['cpus']} CPU(s), "
                               f"Python {machine['python']}, memosd {machine['memosd']}")
    return 0 if passed else 1


def add_reliability_commands(sub, common) -> None:
    """Add ``reliability`` to the ``memosd`` subparsers.

    ``common`` (endpoint and client options) is not a parent here: every suite
    starts its own daemons on temporary stores and never touches a running one.
    """
    del common
    p = sub.add_parser(
        "reliability", help="try to break a daemon: kill -9, load, fuzz, a flooding client, soak; "
                            "exit 1 when a bar is missed",
        description="Start daemons on temporary stores and check, over the real sockets: that no acknowledged "
                    "write is lost across kill -9 (crash), that 64 concurrent clients see no errors (load), that "
                    "hostile requests for every operation never crash, hang or corrupt it (fuzz), that one client "
                    "flooding requests it never reads does not slow 32 polite ones (fairness), that its "
                    "memory stays flat under sustained load (soak), and that a three-node cluster on NATS "
                    "JetStream loses no acknowledged write when a node or a NATS server is killed and fences "
                    "a resumed old owner (cluster). See docs/reliability.md and docs/cluster.md.")
    p.add_argument("suite", choices=[*SUITES, "all"], help="which suite to run (all: each in turn)")
    p.add_argument("--quick", action="store_true",
                   help="small run for CI: 3 crash cycles, 5 s load, 2000 fuzz cases, 6 s fairness flood "
                        "phase, 10 s soak")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--cycles", type=_positive(int), help="crash: kill -9 cycles (default 100)")
    p.add_argument("--load-seconds", type=_positive(float), help="load: seconds of load (default 30)")
    p.add_argument("--clients", type=_positive(int), default=64, help="load: concurrent clients (default 64)")
    p.add_argument("--cases", type=_positive(int),
                   help="fuzz: cases to send, each one message of 1-4 frames (default 1000000)")
    p.add_argument("--fairness-seconds", type=_positive(float),
                   help="fairness: seconds of the flood phase, and of the baseline around it (default 30)")
    p.add_argument("--soak-seconds", type=_positive(float), help="soak: seconds of load (default 120)")
    p.add_argument("--cluster-seconds", type=_positive(float),
                   help="cluster: seconds of writing after each fault (default 30; quick 10)")
    p.add_argument("--seed", type=int, help="seed for every suite's random choices (default: a random one, "
                                            "reported in the results)")
    p.add_argument("--store-dir", help="directory for the temporary stores (default: the system temp dir); "
                                       "its file system decides what an fsync costs")
    p.set_defaults(handler=cmd_reliability)
