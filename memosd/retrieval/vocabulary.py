"""Term <-> dense integer id mapping whose entries disappear with their last posting."""

from __future__ import annotations

from collections.abc import Iterable


class Vocabulary:
    """Assigns small integer ids to terms; released ids are reused."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._terms: list[str | None] = []
        self._free: list[int] = []

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, term: str) -> int | None:
        return self._ids.get(term)

    def assign(self, terms: Iterable[str]) -> list[int]:
        """Ids of ``terms``, creating the missing ones."""
        ids = self._ids
        out = []
        for term in terms:
            term_id = ids.get(term)
            if term_id is None:
                if self._free:
                    term_id = self._free.pop()
                    self._terms[term_id] = term
                else:
                    term_id = len(self._terms)
                    self._terms.append(term)
                ids[term] = term_id
            out.append(term_id)
        return out

    def release(self, term_ids: Iterable[int]) -> None:
        """Forget the terms behind ``term_ids`` (their postings are gone)."""
        for term_id in term_ids:
            del self._ids[self._terms[term_id]]
            self._terms[term_id] = None
            self._free.append(term_id)

    def nbytes(self) -> int:
        # dict entry + str object + list slot, roughly.
        return len(self._ids) * 150 + 8 * len(self._terms)
