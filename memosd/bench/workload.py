"""Memories to store and queries to ask during ``memosd bench``.

Two sources with one interface: the built-in :class:`~memosd.bench.textgen.TextGenerator`,
or a LoCoMo file (``--data``) whose turns are cycled to reach the store size.
Recycled LoCoMo turns get a different speaker and an extra clause from the
generator, so the store is not the same few thousand documents repeated
(identical documents would tie on every query and flatter nothing real).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from memosd_client.protocol import messages as m

from .locomo import load_conversations
from .textgen import TextGenerator

# Sessions start at random days over a realistic window (2022-2023); within a session turns follow
# each other a minute apart, as in a chat (the memory tiers page turns by time gaps).
_EPOCH_START = 1_640_995_200.0
_EPOCH_SPAN = 2 * 365 * 86_400.0
_SESSION_TURNS = 500
_TURN_GAP_S = 60.0


class Workload:
    """Generates memories (as :class:`MemoryIn`) and query texts, deterministically for a seed."""

    def __init__(self, data: str | None = None, seed: int = 0):
        self.source = "generated" if data is None else f"locomo:{data}"
        self._gen = TextGenerator(seed)
        self._rng = random.Random(seed + 1)
        self._turns: list[str] = []
        self._questions: list[str] = []
        if data is not None:
            for conv in load_conversations(data):
                self._turns.extend(t.memory_text for t in conv.turns)
                self._questions.extend(q.question for q in conv.questions)
            if not self._turns:
                raise ValueError(f"{data}: no turns found")
        self._produced = 0
        self._session_start = _EPOCH_START

    def _text(self, index: int) -> str:
        if not self._turns:
            return self._gen.turn()
        base = self._turns[index % len(self._turns)]
        if index < len(self._turns):
            return base
        # A recycled turn: new speaker and one extra generated sentence.
        _, _, body = base.partition(": ")
        return f"{self._gen.name()}: {body or base} {self._gen.clause()}"

    def memories(self, count: int) -> list[m.MemoryIn]:
        """The next ``count`` memories, continuing where the previous call stopped."""
        out = []
        for _ in range(count):
            i = self._produced
            self._produced += 1
            if i % _SESSION_TURNS == 0:
                self._session_start = _EPOCH_START + self._rng.random() * _EPOCH_SPAN
            out.append(m.MemoryIn(
                text=self._text(i),
                session=str(i // _SESSION_TURNS + 1),  # a "session" of 500 turns, like a long chat
                event_time=self._session_start + (i % _SESSION_TURNS) * _TURN_GAP_S,
                meta={"n": i},
            ))
        return out

    def batches(self, count: int, batch: int) -> Iterator[list[m.MemoryIn]]:
        """``count`` memories in lists of at most ``batch``."""
        left = count
        while left > 0:
            size = min(batch, left)
            left -= size
            yield self.memories(size)

    def queries(self, count: int) -> list[str]:
        """``count`` query texts: LoCoMo questions (cycled) with --data, else generated questions."""
        if self._questions:
            pool = list(self._questions)
            self._rng.shuffle(pool)  # mix conversations instead of asking one's questions in a row
            return [pool[i % len(pool)] for i in range(count)]
        return [self._gen.question() for _ in range(count)]
