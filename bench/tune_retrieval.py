"""Measure memosd retrieval quality on LoCoMo and in-process latency at scale.

    python bench/tune_retrieval.py PATH/TO/locomo-dev.json --size 100000

Quality: every conversation gets its own index with one document per turn;
each question with evidence is searched in its conversation and recall@k is
|evidence ∩ top-k| / |evidence|, averaged over questions.
Speed: a corpus of ``--size`` turns cycled from LoCoMo with three words per
turn swapped for Zipf-drawn pseudo-words (so the vocabulary keeps growing) is
indexed with add_many; then single adds, LoCoMo questions one by one (wall and
CPU time: on a shared machine the gap is time spent descheduled) and removes
are timed.

The figures here are in-sample (flat index, in-process). Settings are chosen
by leave-one-conversation-out cross-validation through the real daemon with
bench/crossval.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memosd.retrieval import HybridIndex, RetrievalConfig  # noqa: E402

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
_EVIDENCE_ID = re.compile(r"D:?(\d+):(\d+)")


@dataclasses.dataclass
class Conversation:
    turn_ids: list[str]
    texts: list[str]
    questions: list[tuple[str, set[str], int]]


def turn_text(turn: dict) -> str:
    text = f"{turn['speaker']}: {turn['text']}"
    if turn.get("blip_caption"):
        text += f" [shared image: {turn['blip_caption']}]"
    return text


def normalise_evidence(entries: list[str], known: set[str]) -> set[str]:
    """Evidence ids as turn ids; unknown ids are dropped.

    'D8:6; D9:17' -> {D8:6, D9:17}; 'D:11:26' -> D11:26; 'D30:05' -> D30:5.
    """
    ids = set()
    for entry in entries:
        for part in re.split(r"[;,\s]+", entry):
            match = _EVIDENCE_ID.fullmatch(part)
            if match:
                ids.add(f"D{int(match[1])}:{int(match[2])}")
    return ids & known


def load_conversations(path: Path) -> list[Conversation]:
    conversations = []
    for sample in json.loads(path.read_text()):
        sessions = sample["conversation"]
        turns = [
            turn
            for key in sorted(
                (k for k in sessions if re.fullmatch(r"session_\d+", k)), key=lambda k: int(k[8:])
            )
            for turn in sessions[key]
        ]
        turn_ids = [turn["dia_id"] for turn in turns]
        known = set(turn_ids)
        questions = []
        for qa in sample["qa"]:
            evidence = normalise_evidence(qa.get("evidence", []), known)
            if evidence:
                questions.append((qa["question"], evidence, int(qa["category"])))
        conversations.append(Conversation(turn_ids, [turn_text(t) for t in turns], questions))
    return conversations


def evaluate(conversations: list[Conversation], config: RetrievalConfig) -> dict[str, float]:
    """Mean recall@5/@10 overall, per category, and over categories 1-4."""
    per_question: list[tuple[int, float, float]] = []
    for conv in conversations:
        index = HybridIndex(config)
        index.add_many(range(len(conv.texts)), conv.texts)
        for question, evidence, category in conv.questions:
            top = [conv.turn_ids[hit.slot] for hit in index.search(question, 10)]
            per_question.append(
                (
                    category,
                    len(evidence & set(top[:5])) / len(evidence),
                    len(evidence & set(top)) / len(evidence),
                )
            )
    result: dict[str, float] = {
        "R@5": statistics.fmean(r5 for _, r5, _ in per_question),
        "R@10": statistics.fmean(r10 for _, _, r10 in per_question),
        "R@10 cat1-4": statistics.fmean(r10 for c, _, r10 in per_question if c != 5),
        "questions": len(per_question),
    }
    for category, name in CATEGORIES.items():
        values = [r10 for c, _, r10 in per_question if c == category]
        result[f"R@10 {category} {name}"] = statistics.fmean(values) if values else float("nan")
    return result


def synthetic_corpus(conversations: list[Conversation], size: int, seed: int) -> list[str]:
    """Cycle LoCoMo turns, swapping ~3 words per turn for Zipf-drawn pseudo-words."""
    rng = np.random.default_rng(seed)
    base = [text.split() for conv in conversations for text in conv.texts]
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    vocab_size = 200_000
    parts = rng.integers(0, len(syllables), size=(vocab_size, 3))
    vocab = ["".join(syllables[i] for i in row) for row in parts]
    ranks = np.minimum(rng.zipf(1.2, size=3 * size), vocab_size) - 1
    texts = []
    for i in range(size):
        words = list(base[i % len(base)])
        for j in range(3):
            words[int(rng.integers(len(words)))] = vocab[int(ranks[3 * i + j])]
        texts.append(" ".join(words))
    return texts


def measure_speed(
    texts: list[str], queries: list[str], config: RetrievalConfig, n_queries: int
) -> dict[str, float]:
    index = HybridIndex(config)
    start = time.perf_counter()
    index.add_many(range(len(texts)), texts)
    build_s = time.perf_counter() - start
    built_bytes = index.resident_bytes()
    extra = [f"{t} (again)" for t in texts[:2000]]
    start = time.perf_counter()
    for offset, text in enumerate(extra):
        index.add(len(texts) + offset, text)
    single_add_us = (time.perf_counter() - start) / len(extra) * 1e6
    for query in queries[:200]:
        index.search(query, 10)
    wall, cpu = [], []
    for i in range(n_queries):
        query = queries[i % len(queries)]
        start, start_cpu = time.perf_counter(), time.thread_time()
        index.search(query, 10)
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    allowed = np.random.default_rng(0).random(len(index)) < 0.5
    masked = []
    for i in range(min(n_queries, 1000)):
        start = time.perf_counter()
        index.search(queries[i % len(queries)], 10, allowed)
        masked.append(time.perf_counter() - start)
    vectors = index.encode(queries[:500])
    by_vector = []
    for vector in vectors:
        start = time.perf_counter()
        index.search_vector(vector, 10)
        by_vector.append(time.perf_counter() - start)
    start = time.perf_counter()
    for offset, text in enumerate(extra[:200]):
        index.remove(len(texts) + offset, text)
    remove_us = (time.perf_counter() - start) / 200 * 1e6
    wall_ms, cpu_ms, masked_ms, vector_ms = (
        np.array(t) * 1e3 for t in (wall, cpu, masked, by_vector)
    )
    return {
        "docs": len(index),
        "add_many docs/s": len(texts) / build_s,
        "add() us/doc": single_add_us,
        "remove() us/doc": remove_us,
        "search p50 ms": float(np.percentile(wall_ms, 50)),
        "search p99 ms": float(np.percentile(wall_ms, 99)),
        "search p50 ms (CPU time)": float(np.percentile(cpu_ms, 50)),
        "search p99 ms (CPU time)": float(np.percentile(cpu_ms, 99)),
        "search, 50% mask, p50 ms": float(np.percentile(masked_ms, 50)),
        "search_vector p50 ms": float(np.percentile(vector_ms, 50)),
        "resident MiB after add_many": built_bytes / 2**20,
        "resident MiB after adds": index.resident_bytes() / 2**20,
        "load average (1 min)": os.getloadavg()[0],
    }


def print_table(title: str, rows: dict[str, float]) -> None:
    print(f"\n{title}")
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {shown:>12}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("locomo", type=Path, help="path to locomo-dev.json")
    parser.add_argument("--size", type=int, default=100_000, help="docs in the latency index")
    parser.add_argument("--queries", type=int, default=5000, help="timed searches")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-speed", action="store_true", help="quality only")
    args = parser.parse_args()

    conversations = load_conversations(args.locomo)
    default = RetrievalConfig()
    variants = {
        "hybrid (default)": default,
        "bm25 only": dataclasses.replace(default, hash_weight=0.0),
        "hash only": dataclasses.replace(default, bm25_weight=0.0),
        "bm25 k1=1.2 b=.75": RetrievalConfig(k1=1.2, b=0.75, hash_weight=0.0),
    }
    results = {name: evaluate(conversations, config) for name, config in variants.items()}
    first = next(iter(results.values()))
    print(f"LoCoMo evidence recall ({first.pop('questions')} questions)")
    print(f"  {'metric':<24}" + "".join(f"{name:>18}" for name in results))
    for metric in first:
        print(f"  {metric:<24}" + "".join(f"{r[metric]:>18.3f}" for r in results.values()))

    if not args.skip_speed:
        texts = synthetic_corpus(conversations, args.size, args.seed)
        queries = [q for conv in conversations for q, _, _ in conv.questions]
        print_table(
            f"In-process speed, {args.size} docs, limit=10",
            measure_speed(texts, queries, default, args.queries),
        )


if __name__ == "__main__":
    main()
