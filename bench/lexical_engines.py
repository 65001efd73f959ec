"""Compare lexical top-k engines for memosd's first stage: latency, RAM, disk, updates, LoCoMo.

Candidates, each fed the same memosd terms (casefold, stopwords, Snowball stems), so that the
comparison is of the engines and not of their analysers:

- ``memosd``: today's ``BM25Channel`` (numpy posting arrays, every posting of the query's terms
  scored into a namespace-sized array, then ``argpartition``).
- ``bm25s``: precomputed BM25 impacts in a sparse matrix (scipy), saved and memory-mapped.
- ``tantivy``: the Lucene-class engine through its Python binding: immutable segments on disk,
  memory-mapped, block-max WAND top-k.

Each (engine, size) runs in a fresh child process, so RSS figures belong to one engine only.
Synthetic chat turns come from ``memosd.bench.textgen`` (deterministic); ``--locomo`` adds flat
evidence recall@10 on a LoCoMo file (one document per turn, same protocol as ``memosd eval``).

    python bench/lexical_engines.py --sizes 100000,1000000 --queries 2000 \\
        --locomo ../shared/data/locomo/locomo-dev.json --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from memosd.bench.stats import summarize_ns
from memosd.bench.textgen import TextGenerator
from memosd.retrieval.tokenizer import Tokenizer

ENGINES = ("memosd", "bm25s", "tantivy")
TOP_N = 100  # candidates the first stage hands to fusion
K1, B = 0.8, 0.2  # memosd's BM25 parameters (RetrievalConfig)


def memory_kib() -> dict[str, int]:
    """RssAnon and RssFile of this process (KiB), from /proc."""
    out = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("RssAnon:", "RssFile:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0])
    return out


def dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


# --------------------------------------------------------------------------- engines


class MemosdEngine:
    """Today's index: score every posting of the query terms, then partial sort."""

    persistent = False

    def __init__(self, path: str, k1: float = K1, b: float = B):
        from memosd.retrieval.bm25 import BM25Channel

        self.channel = BM25Channel(k1, b)
        self.scores = np.zeros(0, dtype=np.float32)

    def build(self, docs: list[list[str]]) -> None:
        from memosd.retrieval.term_batch import TermBatch

        chunk = 16384
        for start in range(0, len(docs), chunk):
            part = docs[start : start + chunk]
            self.channel.add_batch(np.arange(start, start + len(part)), TermBatch(part))
        self.scores = np.zeros(len(docs), dtype=np.float32)

    def add_one(self, slot: int, terms: list[str]) -> None:
        self.channel.add_one(slot, terms)
        if slot >= len(self.scores):
            self.scores = np.zeros(slot + 1024, dtype=np.float32)

    def search(self, terms: list[str], n: int) -> list[int]:
        slots, weights = self.channel.contributions(terms)
        if not len(slots):
            return []
        scores = self.scores
        scores[:] = 0.0
        np.add.at(scores, slots, weights)
        n = min(n, int((scores > 0).sum()))
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        return [int(s) for s in top[np.lexsort((top, -scores[top]))]]

    def disk_bytes(self) -> int:
        return 0


class Bm25sEngine:
    """bm25s: impacts precomputed at index time; a static index (an add means a rebuild)."""

    persistent = True

    def __init__(self, path: str, k1: float = K1, b: float = B):
        import bm25s

        self.bm25s = bm25s
        self.path = path
        self.k1, self.b = k1, b
        self.retriever = None
        self.vocab: dict[str, int] = {}

    def build(self, docs: list[list[str]]) -> None:
        retriever = self.bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        retriever.index(docs, show_progress=False)
        retriever.save(self.path)
        self.reopen()

    def reopen(self) -> None:
        self.retriever = self.bm25s.BM25.load(self.path, mmap=True)
        self.vocab = self.retriever.vocab_dict

    def add_one(self, slot: int, terms: list[str]) -> None:
        raise NotImplementedError("bm25s indexes are static: adding a document rebuilds the index")

    def search(self, terms: list[str], n: int) -> list[int]:
        ids = [self.vocab[t] for t in terms if t in self.vocab]
        if not ids:
            return []
        scores = self.retriever.get_scores(ids)
        n = min(n, int((scores > 0).sum()))
        if not n:
            return []
        top = np.argpartition(-scores, n - 1)[:n]
        return [int(s) for s in top[np.lexsort((top, -scores[top]))]]

    def disk_bytes(self) -> int:
        return dir_bytes(self.path)


class TantivyEngine:
    """tantivy: segments on disk, memory-mapped, block-max WAND; terms pre-analysed by memosd."""

    persistent = True

    def __init__(self, path: str, k1: float = K1, b: float = B):
        import tantivy

        self.tantivy = tantivy
        self.path = path
        builder = tantivy.SchemaBuilder()
        # The whitespace tokenizer keeps memosd's terms as they are; BM25 is tantivy's (k1 1.2, b 0.75).
        builder.add_text_field("terms", stored=False, tokenizer_name="whitespace", index_option="freq")
        builder.add_integer_field("slot", stored=False, indexed=False, fast=True)
        self.schema = builder.build()
        os.makedirs(path, exist_ok=True)
        self.index = tantivy.Index(self.schema, path=path)
        self.writer = None

    def build(self, docs: list[list[str]]) -> None:
        writer = self.index.writer(heap_size=256_000_000, num_threads=2)
        Document = self.tantivy.Document
        for slot, terms in enumerate(docs):
            writer.add_document(Document(terms=" ".join(terms), slot=slot))
        writer.commit()
        writer.wait_merging_threads()
        self.reopen()

    def reopen(self) -> None:
        self.index = self.tantivy.Index.open(self.path)
        self.writer = None
        self.index.reload()
        self.searcher = self.index.searcher()

    def add_one(self, slot: int, terms: list[str]) -> None:
        if self.writer is None:
            self.writer = self.index.writer(heap_size=16_000_000, num_threads=1)
        self.writer.add_document(self.tantivy.Document(terms=" ".join(terms), slot=slot))
        self.writer.commit()  # a commit is what makes a document searchable (and durable)
        self.index.reload()
        self.searcher = self.index.searcher()

    def search(self, terms: list[str], n: int) -> list[int]:
        Query, Occur = self.tantivy.Query, self.tantivy.Occur
        counts = Counter(terms)
        if not counts:
            return []
        clauses = [(Occur.Should, Query.term_query(self.schema, "terms", t)) for t in counts]
        hits = self.searcher.search(Query.boolean_query(clauses), n, count=False).hits
        if not hits:
            return []
        slots = self.searcher.fast_field_values("slot", [address for _, address in hits])
        return [int(s) for s in slots]

    def disk_bytes(self) -> int:
        return dir_bytes(self.path)


ENGINE_CLASSES = {"memosd": MemosdEngine, "bm25s": Bm25sEngine, "tantivy": TantivyEngine}


# --------------------------------------------------------------------------- one child run


@dataclass
class RunResult:
    engine: str
    size: int
    build_s: float = 0.0
    build_docs_per_s: float = 0.0
    query_p50_us: float | None = None
    query_p99_us: float | None = None
    rss_anon_mib: float = 0.0
    rss_file_mib: float = 0.0
    disk_mib: float = 0.0
    reopen_s: float | None = None
    reopen_rss_anon_mib: float | None = None
    add_one_p50_us: float | None = None
    overlap_at_10_vs_memosd: float | None = None
    top_ids: list[list[int]] = field(default_factory=list)


def synthetic(size: int, queries: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    gen = TextGenerator(seed)
    tok = Tokenizer()
    docs = [tok.terms(gen.turn()) for _ in range(size)]
    qs = [tok.terms(gen.question()) for _ in range(queries)]
    return docs, qs


def run_child(engine: str, size: int, queries: int, seed: int) -> RunResult:
    docs, qs = synthetic(size, queries, seed)
    gc.collect()
    base = memory_kib()
    workdir = tempfile.mkdtemp(prefix=f"lex-{engine}-")
    try:
        result = RunResult(engine, size)
        index = ENGINE_CLASSES[engine](os.path.join(workdir, "index"))
        started = time.perf_counter()
        index.build(docs)
        result.build_s = time.perf_counter() - started
        result.build_docs_per_s = size / result.build_s
        gc.collect()  # the documents stay alive until RSS is read, so the growth is the index's
        for q in qs[:50]:  # warm caches and the page cache
            index.search(q, TOP_N)
        timings = []
        for q in qs:
            t0 = time.perf_counter_ns()
            ids = index.search(q, TOP_N)
            timings.append(time.perf_counter_ns() - t0)
            result.top_ids.append(ids[:10])
        summary = summarize_ns(timings)
        result.query_p50_us, result.query_p99_us = summary["p50_us"], summary["p99_us"]
        now = memory_kib()
        result.rss_anon_mib = (now["RssAnon"] - base["RssAnon"]) / 1024
        result.rss_file_mib = now["RssFile"] / 1024
        result.disk_mib = index.disk_bytes() / 2**20
        del docs
        if index.persistent:
            del index
            gc.collect()
            before = memory_kib()
            t0 = time.perf_counter()
            index = ENGINE_CLASSES[engine](os.path.join(workdir, "index"))
            index.reopen()
            index.search(qs[0], TOP_N)
            result.reopen_s = time.perf_counter() - t0
            result.reopen_rss_anon_mib = (memory_kib()["RssAnon"] - before["RssAnon"]) / 1024
        adds = []
        extra = TextGenerator(seed + 1)
        tok = Tokenizer()
        try:
            for i in range(50):
                terms = tok.terms(extra.turn())
                t0 = time.perf_counter_ns()
                index.add_one(size + i, terms)
                adds.append(time.perf_counter_ns() - t0)
            result.add_one_p50_us = summarize_ns(adds)["p50_us"]
        except NotImplementedError:
            result.add_one_p50_us = None
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- LoCoMo parity


def locomo_recall(path: str, engine: str, k: int = 10) -> dict[str, float]:
    """Flat evidence recall@k of one engine: one document per turn, each conversation apart."""
    from memosd.bench.locomo import load_conversations

    tok = Tokenizer()
    per_category: dict[int, list[float]] = {}
    for conv in load_conversations(path):
        turns = conv.turns
        workdir = tempfile.mkdtemp(prefix=f"locomo-{engine}-")
        try:
            index = ENGINE_CLASSES[engine](os.path.join(workdir, "index"))
            index.build([tok.terms(t.memory_text) for t in turns])
            ids = [t.dia_id for t in turns]
            for q in conv.questions:
                evidence = set(q.evidence)
                if not evidence:
                    continue
                found = {ids[s] for s in index.search(tok.terms(q.question), k)}
                per_category.setdefault(q.category, []).append(len(evidence & found) / len(evidence))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    every = [v for values in per_category.values() for v in values]
    out = {"all": float(np.mean(every))}
    out.update({f"cat{c}": float(np.mean(v)) for c, v in sorted(per_category.items())})
    return out


# --------------------------------------------------------------------------- driver


def overlap_at_10(a: list[list[int]], b: list[list[int]]) -> float:
    shared = [len(set(x) & set(y)) / max(len(y), 1) for x, y in zip(a, b) if y]
    return float(np.mean(shared)) if shared else math.nan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--locomo", help="a LoCoMo JSON file for flat recall@10 per engine")
    parser.add_argument("--json", help="write all figures to this file")
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = run_child(args.child[0], int(args.child[1]), args.queries, args.seed)
        print(json.dumps(asdict(result)))
        return 0
    engines = args.engines.split(",")
    rows: list[RunResult] = []
    for size in [int(s) for s in args.sizes.split(",")]:
        by_engine = {}
        for engine in engines:
            out = subprocess.run([sys.executable, __file__, "--child", engine, str(size),
                                  "--queries", str(args.queries), "--seed", str(args.seed)],
                                 check=True, capture_output=True, text=True)
            by_engine[engine] = RunResult(**json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  {engine} at {size:,}: done", file=sys.stderr)
        reference = by_engine.get("memosd")
        for result in by_engine.values():
            if reference is not None:
                result.overlap_at_10_vs_memosd = overlap_at_10(result.top_ids, reference.top_ids)
            rows.append(result)
    print(f"{'engine':8} {'size':>9} {'build/s':>9} {'p50 us':>8} {'p99 us':>8} {'anon MiB':>9} "
          f"{'disk MiB':>9} {'reopen s':>8} {'add1 us':>9} {'top10 = memosd':>14}")
    for r in rows:
        def f(v, spec):
            return format(v, spec) if v is not None else "-"
        print(f"{r.engine:8} {r.size:>9,} {r.build_docs_per_s:>9,.0f} {f(r.query_p50_us, '8.0f')} "
              f"{f(r.query_p99_us, '8.0f')} {r.rss_anon_mib:>9.1f} {r.disk_mib:>9.1f} "
              f"{f(r.reopen_s, '8.2f')} {f(r.add_one_p50_us, '9.0f')} {f(r.overlap_at_10_vs_memosd, '14.3f')}")
    locomo = {}
    if args.locomo:
        print("\nLoCoMo flat evidence recall@10 (one document per turn, no tiers, no fusion)")
        for engine in engines:
            locomo[engine] = locomo_recall(args.locomo, engine)
            cats = " ".join(f"{k} {v:.3f}" for k, v in locomo[engine].items())
            print(f"  {engine:8} {cats}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"rows": [{k: v for k, v in asdict(r).items() if k != "top_ids"} for r in rows],
                       "locomo": locomo}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
