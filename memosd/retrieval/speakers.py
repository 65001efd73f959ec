"""Who said a turn, read from the transcript convention "Name: text", and which speakers a question names.

Chat transcripts put the speaker first ("Alice: I moved to Lisbon"). A question
about a person ("What does Alice do to relax?") is mostly answered by what that
person said, so recall can prefer the turns of the speakers a question names.
"""

from __future__ import annotations

import re

_SPEAKER = re.compile(r"\s*([A-Z][\w.'’-]*(?: [A-Z][\w.'’-]*){0,3})\s*:\s")
"""One to four capitalised words, then a colon and a space, at the very start."""
_WORD = re.compile(r"[\w'’-]+")


def speaker_of(text: str) -> str | None:
    """The speaker of a transcript line ("Alice: hi" -> "Alice"), or None when the text has no such prefix."""
    found = _SPEAKER.match(text[:64])
    return found.group(1) if found else None


class SpeakerIndex:
    """Speaker names of one namespace as small codes, found again by the words of a question."""

    __slots__ = ("codes", "_by_first")

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self._by_first: dict[str, list[tuple[tuple[str, ...], int]]] = {}

    def code(self, name: str | None) -> int:
        """The code of ``name`` (-1 for None), assigned on first sight."""
        if name is None:
            return -1
        found = self.codes.get(name)
        if found is None:
            found = self.codes[name] = len(self.codes)
            words = tuple(w.lower() for w in _WORD.findall(name))
            if words:
                self._by_first.setdefault(words[0], []).append((words, found))
        return found

    def named_in(self, text: str) -> set[int]:
        """Codes of the speakers whose full name appears, as whole words, in ``text`` (any case; a possessive
        "Alice's" names Alice)."""
        words = [w.lower().removesuffix("'s").removesuffix("’s") for w in _WORD.findall(text)]
        named: set[int] = set()
        for i, word in enumerate(words):
            for name, code in self._by_first.get(word, ()):
                if tuple(words[i:i + len(name)]) == name:
                    named.add(code)
        return named

    def __len__(self) -> int:
        return len(self.codes)
