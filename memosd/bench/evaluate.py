"""``memosd eval locomo``: LoCoMo evidence recall@k through the real daemon and client.

The protocol is the one in the project's benchmark notes: each conversation in
its own namespace, one memory per turn, in order, text ``"<speaker>: <text>"``
(plus ``" [shared image: <caption>]"``), event time = the session's date,
session = the session number, ``meta["dia_id"]`` = the turn id. For every
question with evidence, recall top-k in its conversation's namespace and
score |evidence ∩ top-k turns| / |evidence|, averaged over questions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from memosd_client import Client
from memosd_client.protocol import messages as m

from .locomo import Conversation
from .scores import QuestionScore, per_conversation, spread, summarize
from .stats import summarize_ns

INGEST_BATCH = 1000


def namespace_for(conv: Conversation, prefix: str = "locomo-") -> str:
    """The namespace a conversation is stored in, e.g. ``locomo-conv-26``."""
    return f"{prefix}{conv.sample_id}"


def turn_items(conv: Conversation) -> list[m.MemoryIn]:
    """The memories stored for a conversation, in order."""
    return [
        m.MemoryIn(text=t.memory_text, event_time=t.event_time, session=str(t.session),
                   meta={"dia_id": t.dia_id})
        for t in conv.turns
    ]


def ingest(client: Client, conv: Conversation, namespace: str) -> tuple[int, float]:
    """Replace ``namespace`` with the conversation's turns; returns (turns stored, seconds storing).

    The purge of an earlier run's namespace is not counted in the seconds.
    """
    client.purge_namespace(namespace=namespace)
    items = turn_items(conv)
    started = time.perf_counter()
    for start in range(0, len(items), INGEST_BATCH):
        client.remember_many(items[start:start + INGEST_BATCH], namespace=namespace)
    return len(items), time.perf_counter() - started


def hit_turns(hits: list[m.RecallHit], k: int) -> list[str]:
    """The first ``k`` distinct dia_ids the hits point to, in rank order.

    A hit names its turn in ``meta["dia_id"]``; a hit standing for several
    turns (a page, a fact) may list them in ``meta["dia_ids"]``. k counts
    turns, not hits, so a page pointing at three turns uses three of the k.
    """
    out: list[str] = []
    for hit in hits:
        meta = hit.memory.meta or {}
        ids = meta.get("dia_ids") or ([meta["dia_id"]] if "dia_id" in meta else [])
        for dia_id in ids:
            if dia_id not in out:
                out.append(dia_id)
                if len(out) == k:
                    return out
    return out


@dataclass(slots=True)
class EvalRun:
    """What one pass over a LoCoMo file produced, before it is summarised."""

    ks: list[int]
    conversations: int
    turns: int
    ingest_seconds: float
    scores: list[QuestionScore]
    """One per question asked, in the order asked (conversation by conversation)."""
    skipped: int
    """Questions with no usable evidence, not asked."""
    latencies_ns: list[int] = field(default_factory=list)
    """Client-side time of each recall."""
    engine_ns: list[int] = field(default_factory=list)
    """The daemon's own ``took_us`` of each recall, in nanoseconds."""
    settled: dict | None = None


def run_eval(client: Client, conversations: list[Conversation], ks: list[int], *,
             prefix: str = "locomo-", keep: bool = True,
             progress: Callable[[str, int], None] | None = None,
             settle: Callable[[], dict] | None = None) -> EvalRun:
    """Ingest every conversation, ask every question with evidence, and keep each question's recall@k.

    ``progress(stage, n)`` is called after each conversation ingested (``"ingest"``)
    and each question asked (``"ask"``). ``settle()`` is called between ingesting
    and asking: it waits until the daemon's background work is done (pages formed,
    vectors computed) and returns what to report about it. With ``keep=False`` the
    namespaces are purged afterwards.
    """
    ks = sorted(set(ks))
    depth = max(ks)
    ingest_seconds = 0.0
    turns = 0
    for conv in conversations:
        stored, seconds = ingest(client, conv, namespace_for(conv, prefix))
        turns += stored
        ingest_seconds += seconds
        if progress:
            progress("ingest", 1)

    run = EvalRun(ks=ks, conversations=len(conversations), turns=turns, ingest_seconds=ingest_seconds,
                  scores=[], skipped=0, settled=settle() if settle is not None else None)
    for conv in conversations:
        namespace = namespace_for(conv, prefix)
        for q in conv.questions:
            if not q.evidence:
                run.skipped += 1
                continue
            started = time.perf_counter_ns()
            result = client.request("recall", m.RecallArgs(query=q.question, k=depth), namespace)
            run.latencies_ns.append(time.perf_counter_ns() - started)
            run.engine_ns.append(result.took_us * 1000)
            found = hit_turns(result.hits, depth)
            evidence = set(q.evidence)
            run.scores.append(QuestionScore(conv.sample_id, q.category,
                                            {k: len(evidence & set(found[:k])) / len(evidence) for k in ks}))
            if progress:
                progress("ask", 1)
    if not keep:
        for conv in conversations:
            client.purge_namespace(namespace=namespace_for(conv, prefix))
    return run


def report(run: EvalRun) -> dict:
    """The figures of a run: overall, per category, categories 1-4, per conversation and their spread,
    ingestion and recall latency."""
    ks = run.ks
    summary = summarize(run.scores, ks)
    out: dict = {
        "ks": ks,
        "conversations": run.conversations,
        "turns": run.turns,
        "questions": summary.pop("questions"),
        "skipped_no_evidence": run.skipped,
    }
    out.update(summary)
    conversations = per_conversation(run.scores, ks)
    out["per_conversation"] = conversations
    out["spread"] = spread(conversations, ks)
    seconds = run.ingest_seconds
    out["ingest"] = {"turns": run.turns, "seconds": round(seconds, 3), "batch": INGEST_BATCH,
                     "per_s": round(run.turns / seconds, 1) if seconds else None}
    lat = summarize_ns(run.latencies_ns)
    lat["engine_p50_us"] = summarize_ns(run.engine_ns)["p50_us"]
    out["recall_latency"] = lat
    if run.settled is not None:
        out["daemon"] = run.settled
    return out


def evaluate(client: Client, conversations: list[Conversation], ks: list[int], *,
             prefix: str = "locomo-", keep: bool = True,
             progress: Callable[[str, int], None] | None = None,
             settle: Callable[[], dict] | None = None) -> dict:
    """:func:`run_eval` then :func:`report`: ingest, ask and score, as one JSON-ready dict."""
    return report(run_eval(client, conversations, ks, prefix=prefix, keep=keep, progress=progress, settle=settle))


def settle_daemon(admin, namespaces: list[str], timeout_s: float = 600.0) -> Callable[[], dict]:
    """A ``settle`` for :func:`evaluate`: wait until the tier scheduler has no backlog and no memory
    waits for its dense vector, then report the tiers of ``namespaces`` (pages, resident bytes)."""

    def settle() -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            tiers = admin.request("tiers", m.TiersArgs())
            plugins = admin.request("plugins", m.PluginsArgs())
            migration = plugins.migration
            embedding = migration is not None and (migration.queued or migration.state == "running")
            if (tiers.backlog == 0 and not embedding) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        mine = [ns for ns in tiers.namespaces if ns.name in namespaces]
        return {
            "settled": tiers.backlog == 0 and not embedding,
            "pages": sum(ns.pages for ns in mine),
            "resident_bytes": tiers.resident_bytes,
            "budget_bytes": tiers.budget_bytes,
            "policy": tiers.policy,
        }

    return settle


def tier_counters(admin, namespaces: list[str]) -> dict:
    """Faults and evictions of ``namespaces`` so far (asked after the questions)."""
    mine = [ns for ns in admin.request("tiers", m.TiersArgs()).namespaces if ns.name in namespaces]
    return {name: sum(getattr(ns, name) for ns in mine)
            for name in ("faults", "fault_queries", "queries", "evictions", "resident_pages", "pages")}
