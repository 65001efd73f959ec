"""From the model's text to a Consolidation: find the JSON object, then keep only what checks out.

Everything is validated against the page: a fact or entity survives only with
at least one source among the turns the model was shown, texts are cleaned
and clamped, counts are capped. An answer with neither a summary nor a valid
fact is rejected (InvalidResponse), so memosd falls back to its own policy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from memosd.plugins.api import Consolidation, EntityMention, Fact, PageView

from . import dates
from .errors import InvalidResponse
from .limits import (
    MAX_DATE_CHARS,
    MAX_ENTITIES,
    MAX_ENTITY_CHARS,
    MAX_FACT_CHARS,
    MAX_FACTS,
    MAX_KEYWORD_CHARS,
    MAX_KEYWORDS,
    MAX_SUMMARY_CHARS,
)

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_ID = re.compile(r"^\[?\s*(\d{1,19})\s*\]?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def extract_json(content: str) -> dict[str, Any]:
    """The JSON object in the model's answer, tolerating code fences, reasoning blocks and chatter around it."""
    text = _THINK.sub("", content).strip()
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        start = candidate.find("{")
        while start != -1:
            try:
                value, _ = json.JSONDecoder().raw_decode(candidate, start)
            except ValueError:
                start = candidate.find("{", start + 1)
                continue
            if isinstance(value, dict):
                return value
            start = candidate.find("{", start + 1)
    raise InvalidResponse(f"the model's answer holds no JSON object: {content[:160]!r}")


def to_consolidation(answer: dict[str, Any], page: PageView, shown: frozenset[int],
                     model: str) -> tuple[Consolidation, dict[str, int]]:
    """The validated Consolidation (``usage`` left empty) and counts of what was dropped."""
    turns = {turn.id: turn for turn in page.turns if turn.id in shown}
    order = {turn_id: i for i, turn_id in enumerate(t.id for t in page.turns)}
    dropped = {"facts_dropped": 0, "entities_dropped": 0}
    facts = _facts(answer.get("facts"), turns, order, model, dropped)
    entities = _entities(answer.get("entities"), turns, order, dropped)
    summary = _clean(answer.get("summary"), MAX_SUMMARY_CHARS)
    if not summary and not facts:
        raise InvalidResponse("the model's answer has no summary and no fact with a valid source")
    if not summary:
        summary = _clamp("; ".join(f.text for f in facts), MAX_SUMMARY_CHARS)
    keywords = _keywords(answer.get("keywords"))
    return Consolidation(summary=summary, keywords=keywords, facts=facts, entities=entities), dropped


def _facts(raw: Any, turns: dict, order: dict[int, int], model: str, dropped: dict[str, int]) -> tuple[Fact, ...]:
    out: list[Fact] = []
    seen: set[str] = set()
    for item in _items(raw):
        text = _clean(item.get("text") if isinstance(item, dict) else None, MAX_FACT_CHARS)
        sources = _sources(item.get("sources") if isinstance(item, dict) else None, turns, order)
        if not text or not sources or text.casefold() in seen or len(out) == MAX_FACTS:
            dropped["facts_dropped"] += 1
            continue
        seen.add(text.casefold())
        meta: dict[str, Any] = {"model": model}
        event_time = None
        when = _clean(item.get("date"), MAX_DATE_CHARS)
        if when and when.casefold() not in ("null", "none", "unknown", "n/a"):
            meta["when"] = when
            reference = next((turns[s].event_time for s in sources if turns[s].event_time is not None), None)
            resolved = dates.resolve(when, reference)
            if resolved is not None:
                day, granularity = resolved
                event_time = dates.to_epoch(day)
                meta.update(date=day.isoformat(), granularity=granularity)
        out.append(Fact(text=text, sources=sources, event_time=event_time, meta=meta))
    return tuple(out)


def _entities(raw: Any, turns: dict, order: dict[int, int], dropped: dict[str, int]) -> tuple[EntityMention, ...]:
    merged: dict[str, tuple[str, set[int]]] = {}
    for item in _items(raw):
        name = _clean(item.get("name") if isinstance(item, dict) else item, MAX_ENTITY_CHARS)
        if not name:
            dropped["entities_dropped"] += 1
            continue
        sources = _sources(item.get("sources"), turns, order) if isinstance(item, dict) else ()
        if not sources:
            # No usable ids from the model: the turns that literally name the entity are its provenance.
            folded = name.casefold()
            sources = tuple(t for t in sorted(turns, key=order.__getitem__) if folded in turns[t].text.casefold())
        key = name.casefold()
        if not sources or (key not in merged and len(merged) == MAX_ENTITIES):
            dropped["entities_dropped"] += 1
            continue
        merged.setdefault(key, (name, set()))[1].update(sources)
    return tuple(EntityMention(name=name, sources=tuple(sorted(ids, key=order.__getitem__)))
                 for name, ids in merged.values())


def _keywords(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = raw.split(",")
    out: dict[str, str] = {}
    for item in _items(raw):
        word = _clean(item, MAX_KEYWORD_CHARS)
        if word and word.casefold() not in out and len(out) < MAX_KEYWORDS:
            out[word.casefold()] = word
    return tuple(out.values())


def _sources(raw: Any, turns: dict, order: dict[int, int]) -> tuple[int, ...]:
    """Valid turn ids in page order; ids the model was not shown are dropped."""
    ids: set[int] = set()
    for item in [raw] if isinstance(raw, (int, str)) else _items(raw):
        if isinstance(item, bool):
            continue
        if isinstance(item, str) and (match := _ID.match(item.strip())) is not None:
            item = int(match.group(1))
        if isinstance(item, int) and item in turns:
            ids.add(item)
    return tuple(sorted(ids, key=order.__getitem__))


def _items(raw: Any) -> Iterable[Any]:
    return raw if isinstance(raw, list) else ()


def _clean(value: Any, limit: int) -> str:
    """Whitespace collapsed, control characters removed, clamped to ``limit``; '' for anything but a string."""
    if not isinstance(value, str):
        return ""
    return _clamp(" ".join(_CONTROL.sub(" ", value).split()), limit)


def _clamp(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
