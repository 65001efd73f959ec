"""Speakers read from transcript lines, and found again in questions."""

from __future__ import annotations

import pytest

from memosd.retrieval.speakers import SpeakerIndex, speaker_of


@pytest.mark.parametrize("text, speaker", [
    ("Alice: I moved to Lisbon", "Alice"),
    ("  Mary Ann: hello there", "Mary Ann"),
    ("Dr. Smith: take two", "Dr. Smith"),
    ("O'Neil: sure", "O'Neil"),
    ("alice: lower case is not a name", None),
    ("Note:no space after the colon", None),
    ("I said: hello", None),
    ("Meeting at 10:30 tomorrow", None),
    ("The Very Long Name Of Five: words are too many", None),
    ("", None),
])
def test_speaker_of_reads_the_transcript_prefix(text, speaker):
    assert speaker_of(text) == speaker


def test_questions_name_speakers_by_whole_words_in_any_case():
    index = SpeakerIndex()
    alice, mary_ann, al = index.code("Alice"), index.code("Mary Ann"), index.code("Al")
    assert index.code("Alice") == alice and index.code(None) == -1 and len(index) == 3
    assert index.named_in("What does alice like?") == {alice}
    assert index.named_in("What is Alice's favourite dish?") == {alice}
    assert index.named_in("Did Mary Ann meet Al?") == {mary_ann, al}
    assert index.named_in("Did Mary call?") == set()  # half a name is not the name
    assert index.named_in("Where is Alicia?") == set()
