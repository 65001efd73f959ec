"""LoCoMo recall@k through a real daemon with an encoder, waiting for the dense channel.

``memosd eval locomo`` asks its questions as soon as the turns are stored;
with a neural encoder the vectors are still being computed then (about a
minute for the dev split here), so part of each conversation would be
missing from the dense channel. This runs the same ``evaluate`` but, after
each conversation is ingested, waits until the daemon has no memory queued
for embedding.

    OPENBLAS_NUM_THREADS=1 python plugins/memosd-minilm/bench/locomo_e2e.py \
        ../shared/data/locomo/locomo-dev.json --encoder minilm --dense-weight 0.5 --json out.json

``--encoder ""`` runs the lexical-only baseline the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from memosd.bench.evaluate import evaluate
from memosd.bench.locomo import load_conversations
from memosd.testing import DaemonProcess
from memosd_client.protocol import messages as m


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file")
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--dense-weight", type=float)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    env = {"MEMOSD_PLUGINS_ENCODER": args.encoder}
    if args.dense_weight is not None:
        env["MEMOSD_PLUGINS_DENSE_WEIGHT"] = str(args.dense_weight)
    convs = load_conversations(args.file)
    with DaemonProcess(env=env) as daemon, daemon.client() as client, daemon.admin() as admin:
        report = admin.request("plugins", m.PluginsArgs())
        if args.encoder and not report.dense:
            raise SystemExit(f"encoder not loaded: {[p.error for p in report.plugins if p.error]}")
        waited = 0.0

        def progress(stage: str, _n: int) -> None:
            nonlocal waited
            if stage != "ingest" or not args.encoder:
                return
            started = time.perf_counter()
            while admin.request("plugins", m.PluginsArgs()).migration.queued:
                time.sleep(0.2)
            waited += time.perf_counter() - started

        result = evaluate(client, convs, [5, 10], progress=progress)
        result["encoder"] = report.encoder
        result["embedding_wait_s"] = round(waited, 1)
    print(f"{report.encoder or 'lexical only'}: R@5 {result['recall@5']:.4f} R@10 {result['recall@10']:.4f} "
          f"(waited {waited:.0f}s for vectors)")
    for cat, row in result["per_category"].items():
        print(f"  {cat} {row['name']:12s} n={row['questions']:4d} "
              f"R@5 {row['recall@5']:.3f} R@10 {row['recall@10']:.3f}")
    print(f"  recall latency p50 {result['recall_latency'].get('p50_us')} us", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
