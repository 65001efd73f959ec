"""The benchmark and evaluation commands run end to end against a real daemon (figures are not
asserted: speed belongs in the printed tables, not in tests)."""

import json
import subprocess
import sys

from memosd.bench.sample import tiny_locomo


def run(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "memosd", *args], capture_output=True, text=True, timeout=timeout)


def test_eval_locomo_reports_recall_per_category(tmp_path):
    data = tmp_path / "tiny-locomo.json"
    data.write_text(json.dumps(tiny_locomo()))
    result = run("eval", "locomo", str(data), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["questions"] == 6 and report["skipped_no_evidence"] == 1
    for key in ("recall@5", "recall@10"):
        assert 0.0 <= report[key] <= 1.0
    assert set(report["per_category"]) == {"1", "2", "3", "4", "5"}
    # The tiny file's evidence is lexically findable: an index that returned nothing would score 0.
    assert report["recall@10"] > 0.5


def test_eval_rejects_a_file_that_is_not_locomo(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "locomo"}')
    result = run("eval", "locomo", str(bad))
    assert result.returncode == 2 and result.stderr.strip()


def test_bench_quick_prints_floor_and_memosd_figures():
    result = run("bench", "--quick", "--no-compare", "--no-tcp", "--budget-bytes", "262144", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    paths = report["recall"][0]["paths"]
    assert "memosd ipc" in paths and any("floor" in name for name in paths)
    assert paths["memosd ipc"]["p50_us"] > 0 and paths["memosd ipc"]["p99_us"] >= paths["memosd ipc"]["p50_us"]
    assert report["writes"]["durable"]["batched"]
    assert "targets" in report
    row = report["recall"][0]
    # The daemon's own RAM: more than an empty interpreter, less than the whole RSS it is part of.
    assert 10 * 2**20 < row["rss_anon_bytes"] <= row["rss_bytes"]
    assert row["rss_anon_bytes_per_memory"] == round(row["rss_anon_bytes"] / row["memories"], 1)
    # The daemon ran with the budget asked for, and its page vectors stayed under it.
    assert row["page_vectors"]["budget_bytes"] == 262144
    assert 0 < row["page_vectors"]["resident_bytes"] <= 262144
    # Restart: stopped, started on the same store, and the first recall found what was stored; once
    # from the index snapshot of the clean stop, once rebuilding the indexes from the store.
    assert 0 < row["restart"]["ready_s"] <= row["restart_s"] < 120
    assert row["restart"]["first_recall_hits"] > 0 and row["restart"]["indexes_from"] == "snapshot"
    assert row["rebuild"]["first_recall_hits"] > 0 and row["rebuild"]["indexes_from"] == "store"
    # After a kill -9 following a snapshot taken while serving and 1,000 more memories (100 requests):
    # brought forward from the change log, not rebuilt.
    crash = row["crash"]
    assert crash["first_recall_hits"] > 0 and crash["indexes_from"] == "snapshot" and crash["rebuilt"] == 0
    assert 100 <= crash["replayed_entries"] < 200 and row["crash_s"] == crash["first_recall_s"]
    assert crash["memories_after"] == crash["memories_before"] == row["memories"] + 1000  # nothing lost
    # Recall timed again on the indexes opened from the snapshot, beside the figure from before.
    after = row["after_restart"]
    assert 0 < after["p50_us"] <= after["p99_us"]
    assert after["vs_before_p50"] == round(after["p50_us"] / paths["memosd ipc"]["p50_us"], 2)


def test_bench_peers_compares_memosd_with_exact_search_on_the_same_vectors():
    # A missing optional peer package is skipped with a reason, never an error.
    result = run("bench", "--peers", "memosd,numpy,chromadb,lancedb", "--sizes", "600", "--queries", "60",
                 "--dim", "32", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {row["store"]: row for row in report["peers"]}
    assert {"memosd", "numpy"} <= set(rows)
    assert set(rows) | set(report["skipped"]) == {"memosd", "numpy", "chromadb", "lancedb"}
    assert all("pip install" in reason for reason in report["skipped"].values())
    memosd = rows["memosd"]
    # Queries carry no index terms, so memosd answers from its exact dense channel alone.
    assert memosd["recall_at_k"] == 1.0 and rows["numpy"]["recall_at_k"] == 1.0
    assert memosd["insert"]["rows"] == 600 and memosd["insert"]["per_s"] > 0
    assert memosd["n"] == 60 and 0 < memosd["p50_us"] <= memosd["p99_us"]
    assert memosd["engine_p50_us"] > 0 and memosd["rss_anon_bytes"] > 0
    assert memosd["vs_memosd_p50"] == 1.0
    for row in rows.values():
        assert 0.0 <= row["recall_at_k"] <= 1.0


def test_bench_cluster_compares_a_cluster_node_with_a_single_node():
    result = run("bench-cluster", "--nodes", "1", "--size", "500", "--queries", "50", "--write-seconds", "1",
                 "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert [row["config"] for row in rows] == ["single node", "cluster, 1 node(s)"]
    for row in rows:
        assert row["recall_p50_us"] > 0 and row["batch_1000_per_s"] > 0 and row["aggregate_writes_per_s"] > 0
    assert rows[0]["vs_single"]["recall_p50_us"] == 1.0
