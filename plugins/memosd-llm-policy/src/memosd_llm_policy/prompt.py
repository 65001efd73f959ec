"""The messages sent for one page: fixed instructions, then the page's turns tagged with their ids."""

from __future__ import annotations

from datetime import datetime, timezone

from memosd.plugins.api import PageView

from .limits import MAX_ENTITIES, MAX_FACTS, MAX_KEYWORDS, MAX_SUMMARY_CHARS

SYSTEM = f"""You condense a conversation excerpt into long-term memory for an assistant.
Each turn is written as [id] followed by its text; a line "Session date: ..." gives the date of the turns below it.
Answer with one JSON object and nothing else, exactly of this shape:
{{
  "summary": "what the excerpt is about, at most {MAX_SUMMARY_CHARS} characters",
  "keywords": ["up to {MAX_KEYWORDS} short topic keywords"],
  "facts": [
    {{"text": "one self-contained fact naming who it is about", "sources": [12], "date": "yesterday"}}
  ],
  "entities": [{{"name": "a person, place, organisation or thing named", "sources": [12, 14]}}]
}}
Rules:
- At most {MAX_FACTS} facts and {MAX_ENTITIES} entities; prefer facts worth remembering (events, plans, preferences, \
relationships, possessions, opinions), not small talk.
- "sources": the ids (the numbers in square brackets) of the turns that state the fact or name the entity; \
only ids shown in the excerpt.
- Write facts with people's names, never "I" or "you".
- "date": an ISO date (YYYY-MM-DD, YYYY-MM or YYYY) when the text states one; otherwise copy a relative expression \
exactly as written ("yesterday", "last week", "two days ago"), it is resolved against the session date; null when \
no time is given. Do not compute dates yourself.
- Use only information in the excerpt."""


def build_messages(page: PageView, max_turn_chars: int,
                   max_prompt_chars: int) -> tuple[list[dict[str, str]], frozenset[int]]:
    """System and user messages for ``page``, and the ids of the turns shown (the only valid sources).

    Long turns are cut to ``max_turn_chars``; turns past ``max_prompt_chars`` are left out.
    """
    lines: list[str] = []
    shown: list[int] = []
    size = 0
    last_day = None
    for turn in page.turns:
        text = " ".join(turn.text.split())
        if len(text) > max_turn_chars:
            text = text[: max_turn_chars - 1].rstrip() + "…"
        day = _day(turn.event_time)
        header = [f"Session date: {day}"] if day is not None and day != last_day else []
        line = f"[{turn.id}] {text}"
        cost = sum(len(h) + 1 for h in header) + len(line) + 1
        if shown and size + cost > max_prompt_chars:
            # Later turns are dropped rather than the prompt growing unbounded; facts cannot cite them.
            break
        lines += header + [line]
        shown.append(turn.id)
        size += cost
        last_day = day if day is not None else last_day
    if len(shown) < len(page.turns):
        lines.append(f"({len(page.turns) - len(shown)} later turns omitted)")
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]
    return messages, frozenset(shown)


def _day(event_time: float | None) -> str | None:
    if event_time is None:
        return None
    moment = datetime.fromtimestamp(event_time, timezone.utc)
    return f"{moment:%Y-%m-%d} ({moment:%A})"
