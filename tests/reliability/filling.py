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
