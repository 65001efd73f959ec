"""BERT uncased WordPiece tokenisation in pure Python (the all-MiniLM-L6-v2 vocabulary).

Follows ``transformers.BertTokenizer`` with ``do_lower_case=True``: clean the
text, space out CJK ideographs, lower-case, strip accents, split on whitespace
and punctuation, then split each word greedily into the longest vocabulary
pieces (``##`` marks a continuation).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path

MAX_WORD_CHARS = 100
"""Longer words become [UNK], as in BERT (they are never real words)."""


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    # ASCII symbols such as "^", "$" and "`" count as punctuation for BERT although Unicode says otherwise.
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def _clean(text: str) -> str:
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD:
            continue
        cat = unicodedata.category(ch)
        if ch in "\t\n\r" or cat == "Zs":
            out.append(" ")
        elif cat in ("Cc", "Cf"):
            continue
        elif _is_cjk(cp):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    return "".join(out)


def _split_punctuation(word: str) -> list[str]:
    pieces: list[str] = []
    current = ""
    for ch in word:
        if _is_punctuation(ch):
            if current:
                pieces.append(current)
                current = ""
            pieces.append(ch)
        else:
            current += ch
    if current:
        pieces.append(current)
    return pieces


class WordPiece:
    """Text -> token ids for an uncased BERT vocabulary (one token per line of ``vocab.txt``)."""

    def __init__(self, vocab_path: str | Path):
        with open(vocab_path, encoding="utf-8") as f:
            self.vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
        self.cls = self.vocab["[CLS]"]
        self.sep = self.vocab["[SEP]"]
        self.unk = self.vocab["[UNK]"]
        # Conversation text repeats the same words constantly: caching per word makes tokenising cheap.
        self._word_ids = lru_cache(maxsize=65536)(self._word_ids_uncached)

    def encode(self, text: str, max_tokens: int) -> list[int]:
        """[CLS] + pieces + [SEP], truncated to ``max_tokens`` ids in all."""
        ids = [self.cls]
        budget = max_tokens - 1
        for word in _clean(text).lower().split():
            word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
            for piece in _split_punctuation(word):
                ids.extend(self._word_ids(piece))
                if len(ids) >= budget:
                    return ids[:budget] + [self.sep]
        ids.append(self.sep)
        return ids

    def _word_ids_uncached(self, word: str) -> tuple[int, ...]:
        if len(word) > MAX_WORD_CHARS:
            return (self.unk,)
        out: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                found = self.vocab.get(piece)
                if found is not None:
                    out.append(found)
                    break
                end -= 1
            else:
                return (self.unk,)  # no piece fits: the whole word is unknown, as in BERT
            start = end
        return tuple(out)
