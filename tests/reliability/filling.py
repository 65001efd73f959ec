"""Writing until the store refuses: shared by the map-full and disk-full tests."""

from memosd.reliability.common import unique_token
from memosd_client import MemoryIn, StorageFullError


def remember_batches(client, acked: dict[int, str], batches: int, label: str) -> StorageFullError | None:
    """Write up to ``batches`` batches of 20; stop at the first refusal and return it.

    Every acknowledged text goes into ``acked`` (id -> text) so the test can check it later.
    """
    for _ in range(batches):
        items = [MemoryIn(text=f"{label} {' '.join(['words'] * 30)} {unique_token()}") for _ in range(20)]
        try:
            ids = client.remember_many(items).ids
        except StorageFullError as err:
            return err
        acked.update({memory_id: item.text for memory_id, item in zip(ids, items)})
    return None


def assert_all_there(client, acked: dict[int, str]) -> None:
    """Every acknowledged memory reads back as written, and the store holds nothing else."""
    ids = sorted(acked)
    for start in range(0, len(ids), 1000):
        got = client.get_many(ids[start:start + 1000])
        assert got.missing == []
        assert {mem.id: mem.text for mem in got.memories} == {i: acked[i] for i in ids[start:start + 1000]}
    assert sum(1 for _ in client.export()) == len(acked)  # a refused write left no part of itself behind
