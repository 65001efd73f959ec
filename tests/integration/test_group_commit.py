"""Group commit: concurrent small writes share a transaction, and each is recallable once acknowledged."""

from __future__ import annotations

import asyncio

from memosd.testing import DaemonProcess

from _support import token


def test_concurrent_writes_share_commits_and_are_recallable_when_acknowledged(tmp_path):
    with DaemonProcess(tmp_path / "store") as daemon:
        with daemon.client("gc-a") as client:
            before = client.stats().writer

        async def writer(namespace: str, count: int) -> list[tuple[int, str]]:
            async with daemon.async_client(namespace) as client:
                async def one() -> tuple[int, str]:
                    word = token()
                    memory_id = await client.remember(f"note {word} for the group commit test")
                    # Read-your-writes: indexed (with whatever shared its commit) before the reply came.
                    hits = await client.recall(word, k=1)
                    assert [hit.memory.id for hit in hits] == [memory_id]
                    return memory_id, word

                done: list[tuple[int, str]] = []
                for _ in range(count // 32):
                    done += await asyncio.gather(*(one() for _ in range(32)))
                return done

        async def both():
            return await asyncio.gather(writer("gc-a", 256), writer("gc-b", 256))

        written_a, written_b = asyncio.run(both())

        with daemon.client("gc-a") as client:
            after = client.stats().writer
            # A namespace is a boundary for batched indexing too: b's memories are not found in a.
            for _, word in written_b[:20]:
                assert all(word not in hit.memory.text for hit in client.recall(word, k=3))
        with daemon.client("gc-b") as client:
            assert [client.recall(word, k=1)[0].memory.id for _, word in written_b[:20]] == \
                [memory_id for memory_id, _ in written_b[:20]]

    commits, jobs = after.commits - before.commits, after.jobs - before.jobs
    assert jobs >= 512
    assert commits < jobs / 2, f"{jobs} writes took {commits} commits: group commit did not group"
    assert after.largest_group >= 8
    assert sum(count for _, count in after.group_sizes) == after.commits
    assert sum(smallest * count for smallest, count in after.group_sizes) <= after.jobs
    assert len(written_a) == len({memory_id for memory_id, _ in written_a}) == 256
