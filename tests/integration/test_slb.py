"""The semantic lookaside buffer through a real daemon: reuse, and never a stale answer."""

from __future__ import annotations

import time

from memosd.testing import DaemonProcess


def _settle(daemon: DaemonProcess) -> None:
    with daemon.admin() as admin:
        while admin.tiers().backlog:
            time.sleep(0.05)


def _slb(daemon: DaemonProcess):
    with daemon.admin() as admin:
        return admin.tiers().slb


def test_buffered_recall_reuses_candidates_but_never_returns_forgotten_purged_or_misses_new(tmp_path):
    env = {"MEMOSD_SLB_ENABLED": "1", "MEMOSD_SLB_THRESHOLD": "0.6", "MEMOSD_SLB_VERIFY_EVERY": "1"}
    with DaemonProcess(tmp_path / "store", env=env) as daemon, daemon.client(namespace="chat") as client:
        ids = client.remember_many([f"Ana: the lighthouse on the north cape was repainted in year {i}"
                                    for i in range(30)] +
                                   [f"Ben: my sourdough starter needs feeding every {i} hours" for i in range(30)]).ids
        _settle(daemon)
        query = "when was the lighthouse on the north cape repainted vermilion"
        first = [h.memory.id for h in client.recall(query, k=5)]
        assert set(first) <= set(ids[:30])
        again = [h.memory.id for h in client.recall(query + "?", k=5)]
        slb = _slb(daemon)
        assert slb.hits == 1 and slb.lookups == 2 and again == first
        assert slb.agreement == 1.0  # the full search, run beside the hit, returned the same top-5

        # A write after the entry was made (writes do not invalidate): a hit re-scores short-term memory.
        newest = client.remember("Ana: the north cape lighthouse was repainted vermilion")
        through = [h.memory.id for h in client.recall(query + "!", k=5)]
        assert _slb(daemon).hits == 2 and through[0] == newest

        client.forget([through[1]])
        client.purge([through[2]])
        fresh = [h.memory.id for h in client.recall(query + ".", k=5)]  # invalidated: a full search
        assert _slb(daemon).hits == 2
        buffered = [h.memory.id for h in client.recall(query + "!!", k=5)]
        assert _slb(daemon).hits == 3
        assert buffered == fresh and through[1] not in buffered and through[2] not in buffered
        assert _slb(daemon).agreement == 1.0


def test_buffer_is_off_by_default(tmp_path):
    with DaemonProcess(tmp_path / "store") as daemon, daemon.client(namespace="chat") as client:
        client.remember("Ana: the lighthouse on the north cape was repainted")
        client.recall("lighthouse repainted")
        client.recall("lighthouse repainted")
        slb = _slb(daemon)
        assert not slb.enabled and slb.lookups == 0


def test_counters_reach_stats_tiers_and_the_metrics_endpoint(tmp_path):
    import subprocess
    import sys
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    env = {"MEMOSD_SLB_ENABLED": "1", "MEMOSD_SLB_THRESHOLD": "0.6", "MEMOSD_SLB_PREFETCH": "1",
           "MEMOSD_METRICS_LISTEN": "127.0.0.1:0"}
    with DaemonProcess(tmp_path / "store", env=env) as daemon, daemon.client(namespace="chat") as client:
        client.remember_many([f"Ana: the lighthouse on the north cape was repainted in year {i}" for i in range(20)])
        client.recall("when was the lighthouse repainted", k=3)
        client.recall("when was the lighthouse repainted?", k=3)
        with daemon.admin() as admin:
            stats, url = admin.stats().slb, admin.status().metrics_endpoint
        assert (stats.lookups, stats.hits, stats.hit_rate, stats.prefetch) == (2, 1, 0.5, True)
        assert stats.hit_mean_us > 0 and stats.miss_mean_us > 0
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
        assert samples["memosd_slb_lookups_total"] == 2 and samples["memosd_slb_hits_total"] == 1
        assert samples["memosd_slb_hit_mean_seconds"] > 0 and samples["memosd_slb_miss_mean_seconds"] > 0
        assert samples["memosd_prefetch_pages_total"] == 0  # every page is resident: nothing to warm
        shown = subprocess.run([sys.executable, "-m", "memosd", "tiers", "--admin-endpoint", daemon.admin_endpoint],
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert "lookaside buffer: 50.0% of 2 recalls hit" in shown.stdout and "prefetch: 0 pages warmed" in shown.stdout
