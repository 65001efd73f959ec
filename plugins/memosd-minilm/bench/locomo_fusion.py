"""Offline replay of memosd's dense fusion on LoCoMo: which fusion, which weight, which encoder.

1. A real daemon (lexical only) ingests every conversation, as ``memosd eval
   locomo`` does, and answers each question's recall at depth 50 (the depth
   the engine fuses at); the lexical hits and their scores are kept.
2. Each encoder embeds every turn (``encode``) and question (``encode_query``
   when it has one); cached as .npy, since the e5 pass takes minutes here.
3. The dense channel is replayed exactly as the engine runs it (top 50 by
   cosine, positive scores only, equal scores by slot) and every candidate
   fusion is scored with the evaluation's recall@k.

    python plugins/memosd-minilm/bench/locomo_fusion.py ../shared/data/locomo/locomo-dev.json \
        --encoder minilm --encoder e5 --cache /tmp/locomo-vectors --json out.json

Only the fusion step is replayed outside the daemon; ``memosd eval locomo``
with the encoder selected confirms the chosen configuration end to end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from memosd.bench.evaluate import turn_items
from memosd.bench.locomo import load_conversations
from memosd.plugins import fusion
from memosd.retrieval import Hit
from memosd.testing import DaemonProcess
from memosd_client.protocol import messages as m

DEPTH = 50
KS = (5, 10)


def lexical_runs(convs) -> tuple[list[dict], dict[str, dict[int, str]]]:
    """Per question: category, evidence, conversation, lexical hits [(id, score, channels)] at DEPTH."""
    questions: list[dict] = []
    dia_of: dict[str, dict[int, str]] = {}
    with DaemonProcess() as daemon, daemon.client(namespace="x") as client:
        for conv in convs:
            ns = f"locomo-{conv.sample_id}"
            items = turn_items(conv)
            ids = client.remember_many(items, namespace=ns).ids
            dia_of[conv.sample_id] = {i: item.meta["dia_id"] for i, item in zip(ids, items)}
            for q in conv.questions:
                if not q.evidence:
                    continue
                result = client.request("recall", m.RecallArgs(query=q.question, k=DEPTH), ns)
                questions.append({"conv": conv.sample_id, "category": q.category, "question": q.question,
                                  "evidence": list(q.evidence),
                                  "lexical": [(h.memory.id, h.score, tuple(h.matched)) for h in result.hits]})
    return questions, dia_of


def load_encoder(name: str):
    if name == "minilm":
        from memosd_minilm import MiniLMEncoder
        return MiniLMEncoder()
    if name == "e5":
        from e5_probe import E5Probe
        return E5Probe()
    raise SystemExit(f"unknown encoder {name}")


def vectors(name: str, convs, questions, cache: Path) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """Turn vectors per conversation (rows in write order), question vectors, and timings when computed."""
    cache.mkdir(parents=True, exist_ok=True)
    turns_file, queries_file = cache / f"{name}-turns.npy", cache / f"{name}-queries.npy"
    texts = [t.memory_text for c in convs for t in c.turns]
    timing: dict = {}
    if turns_file.exists() and queries_file.exists():
        turns, queries = np.load(turns_file), np.load(queries_file)
    else:
        encoder = load_encoder(name)
        encode_query = getattr(encoder, "encode_query", encoder.encode)
        started = time.perf_counter()
        turns = np.concatenate([encoder.encode(texts[i:i + 64]) for i in range(0, len(texts), 64)])
        timing["turns_per_s"] = round(len(texts) / (time.perf_counter() - started), 1)
        started = time.perf_counter()
        queries = np.concatenate([encode_query([q["question"]]) for q in questions])
        timing["queries_per_s_single"] = round(len(questions) / (time.perf_counter() - started), 1)
        np.save(turns_file, turns)
        np.save(queries_file, queries)
    per_conv: dict[str, np.ndarray] = {}
    at = 0
    for conv in convs:
        per_conv[conv.sample_id] = turns[at:at + len(conv.turns)]
        at += len(conv.turns)
    return per_conv, queries, timing


def dense_hits(turns: np.ndarray, ids: list[int], query: np.ndarray) -> list[tuple[int, float]]:
    """The numpy backend's answer: top DEPTH by inner product, equal scores by key, positive only."""
    scores = turns @ query
    order = np.lexsort((np.arange(len(scores)), -scores))[:DEPTH]
    return [(ids[i], float(scores[i])) for i in order if scores[i] > 0]


def score_run(questions, fused_lists, dia_of) -> dict:
    per_cat: dict[int, list[dict[int, float]]] = defaultdict(list)
    for q, hits in zip(questions, fused_lists):
        found: list[str] = []
        for memory_id in hits:
            dia = dia_of[q["conv"]][memory_id]
            if dia not in found:
                found.append(dia)
        ev = set(q["evidence"])
        per_cat[q["category"]].append({k: len(ev & set(found[:k])) / len(ev) for k in KS})
    allq = [s for v in per_cat.values() for s in v]
    out = {f"recall@{k}": round(float(np.mean([s[k] for s in allq])), 4) for k in KS}
    out["per_category"] = {str(c): {f"recall@{k}": round(float(np.mean([s[k] for s in per_cat[c]])), 4) for k in KS}
                           for c in sorted(per_cat)}
    return out


def engine_order(hits: list[Hit], k: int) -> list[int]:
    # The engine re-sorts fused hits by (-score, memory id); slots are memory ids here.
    return [h.slot for h in sorted(hits, key=lambda h: (-h.score, h.slot))][:k]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file")
    parser.add_argument("--encoder", action="append", default=[])
    parser.add_argument("--cache", default="/tmp/locomo-vectors")
    parser.add_argument("--json")
    parser.add_argument("--weights", default="0.1,0.2,0.3,0.5,0.7,1.0,1.5")
    args = parser.parse_args(argv)
    convs = load_conversations(args.file)
    started = time.perf_counter()
    questions, dia_of = lexical_runs(convs)
    print(f"lexical runs: {len(questions)} questions, {time.perf_counter() - started:.1f}s", file=sys.stderr)
    k = max(KS)
    results: dict = {"lexical": score_run(questions, [[i for i, _, _ in q["lexical"][:k]] for q in questions], dia_of)}
    weights = [float(w) for w in args.weights.split(",")]
    for name in args.encoder:
        per_conv, qvecs, timing = vectors(name, convs, questions, Path(args.cache))
        results[f"{name}:timing"] = timing
        dense_lists = []
        for q, qv in zip(questions, qvecs):
            ids = sorted(dia_of[q["conv"]])
            dense_lists.append(dense_hits(per_conv[q["conv"]], ids, qv))
        results[f"{name}:dense-only"] = score_run(questions, [[i for i, _ in d[:k]] for d in dense_lists], dia_of)
        for label, fuse in fusion_candidates(weights):
            lists = []
            for q, dense in zip(questions, dense_lists):
                lexical = [Hit(i, s, ch) for i, s, ch in q["lexical"]]
                lists.append(engine_order(fuse(lexical, dense, k), k) if dense else [h.slot for h in lexical[:k]])
            results[f"{name}:{label}"] = score_run(questions, lists, dia_of)
    for label, r in results.items():
        if "recall@5" in r:
            cats = " ".join(f"c{c}={v['recall@5']:.3f}/{v['recall@10']:.3f}" for c, v in r["per_category"].items())
            print(f"{label:32s} R@5 {r['recall@5']:.4f} R@10 {r['recall@10']:.4f}  {cats}")
        else:
            print(label, r)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def fusion_candidates(weights):
    """(label, fuse(lexical, dense, k)) for every variant compared; "rank" is the former fusion.py."""
    import candidates  # next to this script (the script's directory is on sys.path)
    for w in weights:
        yield f"rank w={w}", lambda lex, den, k, w=w: candidates.rank(lex, den, k, w)
        yield f"score-max w={w}", lambda lex, den, k, w=w: candidates.score_max(lex, den, k, w)
        yield f"score-minmax w={w}", lambda lex, den, k, w=w: candidates.score_minmax(lex, den, k, w)
        yield (f"score-lexmax-dminmax w={w}",
               lambda lex, den, k, w=w: candidates.score_lexmax_denseminmax(lex, den, k, w))
    yield "fusion.py as installed, w=0.5", lambda lex, den, k: fusion.fuse_scores(lex, den, k, 0.5)


if __name__ == "__main__":
    raise SystemExit(main())
