"""Imports carry arbitrary ids and version links: none of them may hang, corrupt or wedge the daemon."""

import pytest

from memosd.testing import DaemonProcess
from memosd_client import InvalidArgumentError
from memosd_client.protocol import messages as m


def version(memory_id, **fields):
    base = dict(id=memory_id, text=f"imported {memory_id}", created_at=1.0, valid_from=1.0, lineage=memory_id)
    return m.Memory(**{**base, **fields})


@pytest.fixture
def daemon(tmp_path):
    with DaemonProcess(tmp_path / "store") as d:
        yield d


@pytest.mark.parametrize("bad", [
    version(1, supersedes=1),
    version(1, superseded_by=1, valid_to=2.0),
    version(2**63 - 1),
    version(3, supersedes=2**63),
    version(4, valid_to=2.0),                      # closed without a successor
    version(5, tier="hot"),
    version(6, event_time=float("nan")),
    version(7, idempotency_key="😀" * 200),
])
def test_inconsistent_versions_are_refused_and_nothing_is_stored(daemon, bad):
    with daemon.client("imports") as client:
        with pytest.raises(InvalidArgumentError):
            client.import_batch([bad])
        assert client.list(include_forgotten=True, include_superseded=True).memories == []


def test_a_cycle_of_links_cannot_hang_history_purge_or_restart(daemon):
    with daemon.client("cycle", timeout=10, retries=0) as client:
        client.import_batch([version(5, supersedes=6), version(6, supersedes=5, lineage=5)])
        assert sorted(v.id for v in client.history(5)) == [5, 6]
        daemon.kill()
        daemon.start()
        assert client.purge(5).purged == 2
        # Ids are never handed out again, even those an import used and a purge removed.
        assert client.remember("after the cycle") == 7
        with daemon.admin() as admin:
            assert admin.status().writer_alive
