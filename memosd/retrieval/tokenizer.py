"""Text to index terms: casefold, unicode word split, stopword removal, Snowball stems."""

from __future__ import annotations

import re

import Stemmer

from .stopwords import STOPWORDS

# Letters and digits of any script; underscores and apostrophes split words.
_WORD = re.compile(r"[^\W_]+")

# Distinct surface forms seen by a long-lived daemon are unbounded (ids, typos);
# the cache is dropped wholesale past this size rather than tracking recency.
_STEM_CACHE_LIMIT = 200_000
_MISSING = object()


class Tokenizer:
    """Turns text into stemmed, stopword-free terms, memoising stems per surface form."""

    def __init__(self, stopwords: frozenset[str] = STOPWORDS) -> None:
        self._stopwords = stopwords
        self._stemmer = Stemmer.Stemmer("english")
        self._cache: dict[str, str | None] = {}  # None marks a stopword

    def terms(self, text: str) -> list[str]:
        """Return the index terms of ``text`` in order (duplicates kept)."""
        cache = self._cache
        out = []
        for word in _WORD.findall(text.casefold()):
            stem = cache.get(word, _MISSING)
            if stem is _MISSING:
                stem = None if word in self._stopwords else self._stemmer.stemWord(word)
                if len(cache) >= _STEM_CACHE_LIMIT:
                    cache.clear()
                cache[word] = stem
            if stem is not None:
                out.append(stem)
        return out

    def __getstate__(self) -> dict:
        # The stemmer is a C object: a copy (a snapshot of the indexes) makes a new one.
        return {"stopwords": self._stopwords}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["stopwords"])

    def forget(self, text: str) -> None:
        """Drop the words of ``text`` from the stem cache (part of a hard purge)."""
        for word in _WORD.findall(text.casefold()):
            self._cache.pop(word, None)

    def cache_bytes(self) -> int:
        """Rough memory held by the stem cache."""
        return len(self._cache) * 160
