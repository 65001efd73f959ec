"""LoCoMo recall@k per conversation at several dense weights, with leave-one-conversation-out selection.

The protocol and code of ``memosd eval locomo`` (its ingest, settle and scoring), through a real daemon,
but the turns are ingested and embedded once: the daemon is restarted on the same store for each
``dense_weight``, so a weight costs only its questions. For each conversation held out, the weight with
the best R@10 over the other four conversations' questions is chosen and scored on the held-out one; the
cross-validated figure is the mean over all questions of their held-out scores.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python plugins/memosd-minilm/bench/locomo_sweep.py \\
        ../shared/data/locomo/locomo-dev.json --encoder minilm --weights 0.2,0.35,0.5,0.7 --lexical

``--probe NAME=module:Class`` makes a class next to this script (``e5_probe:E5Probe``,
``ensemble_probe:MiniLME5Probe``) loadable by the daemon as encoder NAME, without installing it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from memosd.bench.evaluate import hit_turns, ingest, namespace_for, settle_daemon
from memosd.bench.locomo import load_conversations
from memosd.testing import DaemonProcess
from memosd_client.protocol import messages as m

HERE = Path(__file__).resolve().parent


def ask(daemon: DaemonProcess, convs, depth: int = 10) -> list[dict]:
    """One row per question with evidence: conversation, category, recall@5/@10, latency."""
    rows = []
    with daemon.client() as client:
        for conv in convs:
            for q in conv.questions:
                if not q.evidence:
                    continue
                started = time.perf_counter_ns()
                result = client.request("recall", m.RecallArgs(query=q.question, k=depth), namespace_for(conv))
                latency = (time.perf_counter_ns() - started) / 1000
                found, evidence = hit_turns(result.hits, depth), set(q.evidence)
                rows.append({"conv": conv.sample_id, "cat": q.category, "lat_us": latency,
                             "r5": len(evidence & set(found[:5])) / len(evidence),
                             "r10": len(evidence & set(found[:10])) / len(evidence)})
    return rows


def summary(rows: list[dict]) -> dict:
    def mean(xs):
        return round(sum(xs) / len(xs), 4) if xs else None

    return {"R@5": mean([r["r5"] for r in rows]), "R@10": mean([r["r10"] for r in rows]),
            "p50_us": round(statistics.median(r["lat_us"] for r in rows), 1),
            "cat": {c: mean([r["r10"] for r in rows if r["cat"] == c]) for c in sorted({r["cat"] for r in rows})},
            "conv": {c: mean([r["r10"] for r in rows if r["conv"] == c]) for c in dict.fromkeys(r["conv"] for r in rows)}}


def leave_one_out(by_weight: dict[str, list[dict]]) -> dict:
    """Per held-out conversation, the weight best on the others; their held-out rows scored together."""
    convs = list(dict.fromkeys(r["conv"] for r in next(iter(by_weight.values()))))
    chosen, held = {}, []
    for conv in convs:
        def train(w):
            xs = [r["r10"] for r in by_weight[w] if r["conv"] != conv]
            return round(sum(xs) / len(xs), 6)
        # Ties go to the weight nearer 0.5, the middle of the range usually swept.
        chosen[conv] = max(by_weight, key=lambda w: (train(w), -abs(float(w) - 0.5)))
        held += [r for r in by_weight[chosen[conv]] if r["conv"] == conv]
    s = summary(held)
    return {"chosen": chosen, "R@5": s["R@5"], "R@10": s["R@10"], "cat": s["cat"], "conv": s["conv"]}


def probe_path(specs: list[str]) -> str:
    """A directory holding a bare distribution whose entry points name the probes (NAME=module:Class)."""
    root = Path(tempfile.mkdtemp(prefix="memosd-probes-"))
    info = root / "memosd_bench_probes-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: memosd-bench-probes\nVersion: 0\n")
    lines = [f"{name} = {target}" for name, target in (spec.split("=", 1) for spec in specs)]
    (info / "entry_points.txt").write_text("[memosd.encoders]\n" + "\n".join(lines) + "\n")
    return os.pathsep.join([str(root), str(HERE), os.environ.get("PYTHONPATH", "")])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("file")
    p.add_argument("--encoder", default="", help="encoder entry-point name ('' = lexical only)")
    p.add_argument("--weights", default="0.5", help="comma-separated dense_weight values")
    p.add_argument("--lexical", action="store_true", help="also ask with no encoder (last, same store)")
    p.add_argument("--probe", action="append", default=[], metavar="NAME=module:Class")
    p.add_argument("--json", help="write the summaries and per-question rows here")
    args = p.parse_args(argv)
    convs = load_conversations(args.file)
    weights = args.weights.split(",")
    # A batch of 64 long turns can take over memosd's default 5 s on a busy machine.
    env = {"MEMOSD_PLUGINS_ENCODER": args.encoder, "MEMOSD_PLUGINS_TIMEOUT_S": "60"}
    if args.probe:
        env["PYTHONPATH"] = probe_path(args.probe)
    result: dict = {"encoder": args.encoder, "runs": {}}
    daemon = DaemonProcess(extra_args=["--no-fsync"], env=dict(env, MEMOSD_PLUGINS_DENSE_WEIGHT=weights[0]),
                           startup_timeout=120)
    try:
        daemon.start()
        with daemon.client() as client, daemon.admin() as admin:
            report = admin.request("plugins", m.PluginsArgs())
            if args.encoder and not report.dense:
                raise SystemExit(f"encoder not loaded: {[x.error for x in report.plugins if x.error]}")
            started = time.perf_counter()
            stored = storing = 0.0
            for conv in convs:
                n, seconds = ingest(client, conv, namespace_for(conv))
                stored, storing = stored + n, storing + seconds
            settled = settle_daemon(admin, [namespace_for(c) for c in convs], timeout_s=3600)()
            total = time.perf_counter() - started
        result["ingest"] = {"turns": int(stored), "store_per_s": round(stored / storing, 1),
                            "until_settled_s": round(total, 1), "settled": settled["settled"]}
        print(f"{args.encoder or 'lexical'}: {int(stored)} turns stored at {stored / storing:.0f}/s, "
              f"embedded and settled after {total:.0f} s", flush=True)
        configs = [(w, env) for w in weights] if args.encoder else []
        if args.lexical or not args.encoder:
            configs.append(("lexical", dict(env, MEMOSD_PLUGINS_ENCODER="")))
        by_weight = {}
        for w, e in configs:
            daemon.stop()
            daemon.env = dict(e, MEMOSD_PLUGINS_DENSE_WEIGHT="0.5" if w == "lexical" else w)
            daemon.start()
            if w != "lexical":
                with daemon.admin() as admin:
                    report = admin.request("plugins", m.PluginsArgs())
                if not report.dense or report.migration.state == "running":
                    raise SystemExit(f"dense channel not ready after restart: {report}")
            rows = ask(daemon, convs)
            s = summary(rows)
            result["runs"][w] = {**s, "rows": rows}
            if w != "lexical":
                by_weight[w] = rows
            print(f"  {w}: R@5 {s['R@5']} R@10 {s['R@10']} p50 {s['p50_us'] / 1000:.1f} ms  "
                  f"per category {s['cat']}  per conversation {s['conv']}", flush=True)
        if len(by_weight) > 1:
            result["loo"] = leave_one_out(by_weight)
            print(f"  leave-one-conversation-out: {result['loo']}", flush=True)
    finally:
        daemon.cleanup()
    if args.json:
        Path(args.json).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
