"""What an operator looks at: the Prometheus endpoint, health, status latencies, JSON logs, top."""

import json
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from memosd.testing import DaemonProcess
from memosd_client import NotFoundError


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    env = {"MEMOSD_METRICS_LISTEN": "127.0.0.1:0"}
    with DaemonProcess(tmp_path_factory.mktemp("obs") / "store", env=env,
                       extra_args=["--log-level", "debug"]) as d:
        yield d


def test_metrics_endpoint_counts_requests_and_sizes(daemon):
    with daemon.client("metrics") as client:
        ids = client.remember_many([f"metric memory {i}" for i in range(7)]).ids
        client.forget(ids[0])
        for _ in range(3):
            client.recall("metric", k=3)
        with pytest.raises(NotFoundError):
            client.history(999)  # answered NOT_FOUND by the daemon
    with daemon.admin() as admin:
        url = admin.status().metrics_endpoint
    assert url and url.startswith("http://127.0.0.1:")
    samples = scrape(url)
    assert samples[("memosd_request_seconds_count", (("op", "recall"),))] == 3
    assert samples[("memosd_requests_total", (("op", "history"), ("outcome", "NOT_FOUND")))] == 1
    assert samples[("memosd_requests_total", (("op", "remember"), ("outcome", "ok")))] == 1
    assert samples[("memosd_memories", (("state", "current"),))] == 6
    assert samples[("memosd_memories", (("state", "forgotten"),))] == 1
    assert samples[("memosd_resident_bytes", ())] > 0
    assert samples[("memosd_lmdb_used_bytes", ())] > 0
    assert samples[("memosd_writer_jobs_total", ())] >= samples[("memosd_writer_commits_total", ())] >= 2
    # Jobs per commit as a histogram: one observation per commit (the scheduler may commit between reads).
    commits = samples[("memosd_writer_commits_total", ())]
    assert commits <= samples[("memosd_writer_group_size_count", ())] <= commits + 2
    assert samples[("memosd_writer_group_size_sum", ())] >= samples[("memosd_writer_group_size_count", ())]
    assert samples[("memosd_writer_group_size_bucket", (("le", "+Inf"),))] == samples[
        ("memosd_writer_group_size_count", ())]
    assert samples[("memosd_scheduler_step_seconds_count", ())] >= 0
    assert samples[("memosd_scheduler_longest_step_seconds", ())] >= 0
    assert samples[("memosd_plugin_errors", ())] == 0


def test_status_reports_per_operation_latency(daemon):
    with daemon.client("latency") as client:
        for i in range(20):
            client.remember(f"timed {i}")
    with daemon.admin() as admin:
        ops = admin.status().ops
    assert ops["remember"].count >= 20
    assert 0 < ops["remember"].p50_ms <= ops["remember"].p99_ms


def run_cli(daemon, *args):
    return subprocess.run([sys.executable, "-m", "memosd", *args, "--endpoint", daemon.endpoint,
                           "--admin-endpoint", daemon.admin_endpoint], capture_output=True, text=True, timeout=60)


def test_health_json_has_every_check(daemon):
    result = run_cli(daemon, "health", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    assert set(report["checks"]) >= {"writer_alive", "writer_heartbeat_age_s", "loop_lag_ms", "map_used_ratio",
                                     "disk_free_bytes"}
    assert all(check["ok"] for check in report["checks"].values())


def test_top_once_shows_operations_and_namespaces(daemon):
    with daemon.client("top-ns") as client:
        client.remember("seen by top")
    result = run_cli(daemon, "top", "--once")
    assert result.returncode == 0, result.stderr
    assert "remember" in result.stdout and "top-ns" in result.stdout


def test_logs_are_json_lines_with_request_context(daemon):
    with daemon.client("logged") as client:
        client.remember("leave a trace")
    lines = [json.loads(line) for line in daemon.log().splitlines() if line.startswith("{")]
    assert lines, daemon.log()
    assert all({"event", "level", "timestamp"} <= set(line) for line in lines)
    requests = [line for line in lines if line["event"] == "request" and line.get("namespace") == "logged"]
    assert requests and requests[-1]["op"] == "remember" and requests[-1]["request_id"] >= 1


def test_stdlib_and_structlog_logs_share_one_shape():
    code = (
        "import logging; from memosd.logs import configure_logging, get_logger;"
        "configure_logging('info', 'json');"
        "logging.getLogger('somelib').warning('from stdlib %s', 1);"
        "get_logger('memosd').info('from structlog', k=2)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stderr
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["event"] for line in lines] == ["from stdlib 1", "from structlog"]
    assert lines[0]["logger"] == "somelib" and lines[0]["level"] == "warning"
    assert set(lines[0]) >= {"timestamp", "level", "logger", "event"} and lines[1]["k"] == 2
