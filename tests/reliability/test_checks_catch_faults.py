"""The suites' own checks fail when they should: a check that cannot fail would make its bar meaningless."""

from __future__ import annotations

import collections
import random

from memosd.reliability.common import new_daemon
from memosd.reliability.crash import Ledger, check_exact, verify
from memosd.reliability.fairness import judge as judge_fairness
from memosd.reliability.fuzz import check_reply
from memosd.reliability.fuzz_cases import Case
from memosd.reliability.result import SuiteResult
from memosd.reliability.soak import Sample, judge
from memosd_client import MemoryIn
from memosd_client.protocol import codec
from memosd_client.protocol import messages as m
from memosd_client.protocol.errors import InternalError, InvalidArgumentError

MIB = 1 << 20


def test_crash_verification_reports_lost_altered_and_unacknowledged_memories(tmp_path):
    with new_daemon(tmp_path / "store") as daemon, daemon.client("crash", timeout=10.0) as client:
        items = [MemoryIn(text=f"memory {n}", idempotency_key=f"k{n}") for n in range(4)]
        ids = client.remember_many(items).ids
        ledger = Ledger()
        ledger.ack_remember(items[:3], ids[:3])  # the fourth is stored but never acknowledged
        ledger.texts[ids[0]] = "what the client was told it wrote"
        ledger.texts[10_000] = "a write the store lost"
        result = SuiteResult("crash", "test", {})
        tally: collections.Counter = collections.Counter()
        verify(client, ledger, result, random.Random(1), tally)
        check_exact(client, ledger, result, tally)
    assert (tally["lost"], tally["altered"], tally["extra"]) == (1, 1, 1)
    assert not result.passed


def test_fairness_judgement_fails_on_slowed_polite_clients_and_an_unthrottled_flooder():
    base = {"p50_ms": 40.0, "p99_ms": 200.0}
    throttled = {"busy replies": 256, "times cut off": 1}

    def judged(flood: dict, flooder: dict) -> SuiteResult:
        result = SuiteResult("fairness", "test", {})
        judge_fairness(result, base, flood, flooder)
        return result

    assert judged({"p50_ms": 59.0, "p99_ms": 299.0}, throttled).passed
    slow_p50 = judged({"p50_ms": 61.0, "p99_ms": 200.0}, throttled)
    assert not slow_p50.passed and "p50" in slow_p50.failures[0]
    slow_p99 = judged({"p50_ms": 40.0, "p99_ms": 301.0}, throttled)
    assert not slow_p99.passed and "p99" in slow_p99.failures[0]
    assert not judged(base, {"busy replies": 0, "times cut off": 0}).passed
    assert judged(base, {"busy replies": 0, "times cut off": 1}).passed
    assert not judged({"p50_ms": None, "p99_ms": None}, throttled).passed


def test_soak_judgement_fails_on_steady_growth_and_passes_flat_memory():
    flat = [Sample(t, 100 * MIB, 60 * MIB, MIB) for t in range(20)]
    leaking = [Sample(t, (100 + 6 * t) * MIB, (60 + 6 * t) * MIB, MIB) for t in range(20)]
    ok, bad = SuiteResult("soak", "test", {}), SuiteResult("soak", "test", {})
    judge(flat, ok)
    judge(leaking, bad)
    assert ok.passed and ok.figures["anon RSS growth, 2nd half (MiB)"] == 0
    assert not bad.passed and bad.figures["anon RSS slope, 2nd half (MiB/min)"] > 300


def test_soak_judgement_fails_when_resident_page_vectors_exceed_the_budget():
    within = [Sample(t, 100 * MIB, 60 * MIB, MIB, resident=MIB) for t in range(20)]
    over = [Sample(t, 100 * MIB, 60 * MIB, MIB, resident=(4 if t == 7 else 1) * MIB) for t in range(20)]
    ok, bad = SuiteResult("soak", "test", {}), SuiteResult("soak", "test", {})
    judge(within, ok, budget_bytes=MIB)
    judge(over, bad, budget_bytes=MIB)
    assert ok.passed and not bad.passed and "over the 1.00 MiB budget" in bad.failures[0]


def test_fuzz_reply_check_flags_internal_errors_wrong_ids_and_admin_leaks():
    request = Case((codec.encode_request(41, "get", m.GetArgs(ids=[1]), "ns"),), admin=False, kind="structured",
                   op="get")
    typed = codec.encode_error(41, InvalidArgumentError("bad ids"))
    assert check_reply(request, False, [typed]) == ("INVALID_ARGUMENT", None)
    assert check_reply(request, False, [codec.encode_error(41, InternalError("boom"))])[1].startswith("INTERNAL")
    assert "reply id" in check_reply(request, False, [codec.encode_error(7, InvalidArgumentError("x"))])[1]
    assert check_reply(request, False, [b"\x00garbage"])[0] == "invalid"
    status = Case((codec.encode_request(5, "status", m.StatusArgs()),), admin=False, kind="structured", op="status")
    served = codec.encode_result(5, m.ShutdownResult(stopping=True))
    assert "admin operation" in check_reply(status, False, [served])[1]
