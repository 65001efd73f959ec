"""Reading LoCoMo files: turns, session times and normalised evidence ids.

Format (snap-research/locomo): a list of samples, each with ``sample_id``,
``conversation`` (``speaker_a``, ``speaker_b``, ``session_N`` lists of turns
``{speaker, dia_id, text, [blip_caption]}`` and ``session_N_date_time`` such as
"1:56 pm on 8 May, 2023") and ``qa`` (``{question, answer | adversarial_answer,
evidence, category}``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}

_SESSION_KEY = re.compile(r"session_(\d+)")
_EVIDENCE = re.compile(r"D:?(\d+):(\d+)")
_TIME_FORMATS = ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y", "%I:%M %p on %B %d, %Y")


@dataclass(frozen=True, slots=True)
class Turn:
    dia_id: str
    speaker: str
    text: str
    session: int
    event_time: float | None
    caption: str | None = None

    @property
    def memory_text(self) -> str:
        """The text stored for this turn: speaker kept (dropping it costs ~9 points of recall)."""
        text = f"{self.speaker}: {self.text}"
        if self.caption:
            text += f" [shared image: {self.caption}]"
        return text


@dataclass(frozen=True, slots=True)
class Question:
    question: str
    category: int
    evidence: tuple[str, ...]
    """Normalised dia_ids that exist in the conversation (possibly empty)."""
    raw_evidence: tuple[str, ...] = ()


@dataclass(slots=True)
class Conversation:
    sample_id: str
    turns: list[Turn] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)


def parse_session_time(value: str | None) -> float | None:
    """"1:56 pm on 8 May, 2023" -> epoch seconds (UTC); None when absent or unparseable."""
    if not value:
        return None
    cleaned = " ".join(value.split())
    for fmt in _TIME_FORMATS:
        try:
            return dt.datetime.strptime(cleaned, fmt).replace(tzinfo=dt.timezone.utc).timestamp()
        except ValueError:
            continue
    return None


def normalise_evidence(entries: list[str] | None) -> list[str]:
    """Split "D8:6; D9:17" and canonicalise ids: "D:11:26" -> "D11:26", "D30:05" -> "D30:5".

    Entries with no recognisable id (e.g. a bare "D") yield nothing; order is
    kept and duplicates dropped.
    """
    out: list[str] = []
    for entry in entries or []:
        for part in re.split(r"[;,]", str(entry)):
            match = _EVIDENCE.search(part.strip())
            if match:
                dia_id = f"D{int(match.group(1))}:{int(match.group(2))}"
                if dia_id not in out:
                    out.append(dia_id)
    return out


def _canonical(dia_id: str) -> str:
    ids = normalise_evidence([dia_id])
    return ids[0] if ids else dia_id


def parse_conversation(sample: dict) -> Conversation:
    """One LoCoMo sample -> its turns in order (session by session) and its questions."""
    conv = sample.get("conversation") or {}
    out = Conversation(sample_id=str(sample.get("sample_id", "")))
    sessions = sorted(int(match.group(1)) for key in conv if (match := _SESSION_KEY.fullmatch(key)))
    for number in sessions:
        when = parse_session_time(conv.get(f"session_{number}_date_time"))
        for turn in conv.get(f"session_{number}") or []:
            out.turns.append(Turn(
                dia_id=_canonical(str(turn.get("dia_id", ""))),
                speaker=str(turn.get("speaker", "")),
                text=str(turn.get("text", "")),
                session=number,
                event_time=when,
                caption=turn.get("blip_caption") or None,
            ))
    known = {t.dia_id for t in out.turns}
    for qa in sample.get("qa") or []:
        raw = [str(e) for e in qa.get("evidence") or []]
        evidence = tuple(e for e in normalise_evidence(raw) if e in known)
        out.questions.append(Question(
            question=str(qa.get("question", "")),
            category=int(qa.get("category", 0) or 0),
            evidence=evidence,
            raw_evidence=tuple(raw),
        ))
    return out


def load_conversations(path: str | Path) -> list[Conversation]:
    """Every conversation of a LoCoMo JSON file (a list of samples, or one sample)."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    samples = data if isinstance(data, list) else [data]
    return [parse_conversation(sample) for sample in samples]
