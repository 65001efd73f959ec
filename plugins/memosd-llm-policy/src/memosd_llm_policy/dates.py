"""Turning the model's date for a fact into a day: absolute ISO dates, or relative phrases resolved here.

Small models are unreliable at calendar arithmetic, so the prompt asks them to
copy relative expressions ("yesterday", "last week") verbatim; they are
resolved against the session date (the source turn's ``event_time``) in code.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta, timezone

_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "couple of": 2}
_ISO = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")
_AGO = re.compile(r"^(\d+|[a-z]+(?: couple of)?|a couple of|couple of) (day|week|month|year)s? (ago|before|earlier)$")
_IN = re.compile(r"^in (\d+|[a-z]+|a couple of) (day|week|month|year)s?(?: time)?$")
_REL = re.compile(r"^(last|past|previous|this|next|coming) (week|weekend|month|year|"
                  + "|".join(_WEEKDAYS) + r")$")
_SAME_DAY = {"today", "tonight", "this morning", "this afternoon", "this evening", "earlier today", "now"}
_YEAR_RANGE = (1900, 2200)


def resolve(text: str, reference: float | None) -> tuple[date, str] | None:
    """``(day, granularity)`` for an ISO date or a relative phrase, or None when it cannot be resolved.

    Granularity is ``day``, ``week``, ``weekend``, ``month`` or ``year``; a
    coarser one names the first day of the period (a week: seven days back
    from the reference). Relative phrases need ``reference`` (seconds since
    the epoch, UTC).
    """
    phrase = re.sub(r"\s+", " ", text.strip().lower()).removeprefix("the ").rstrip(".")
    absolute = _absolute(phrase)
    if absolute is not None:
        return absolute
    if reference is None:
        return None
    today = datetime.fromtimestamp(reference, timezone.utc).date()
    return _relative(phrase, today)


def to_epoch(day: date) -> float:
    """Midnight UTC of ``day``, in seconds since the epoch."""
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()


def _absolute(phrase: str) -> tuple[date, str] | None:
    match = _ISO.match(phrase)
    if match is None:
        return None
    year, month, day = (int(g) if g else None for g in match.groups())
    if not _YEAR_RANGE[0] <= year <= _YEAR_RANGE[1]:
        return None
    try:
        if month is None:
            return date(year, 1, 1), "year"
        if day is None:
            return date(year, month, 1), "month"
        return date(year, month, day), "day"
    except ValueError:
        return None  # 2023-02-30 and the like


def _relative(phrase: str, today: date) -> tuple[date, str] | None:
    if phrase in _SAME_DAY:
        return today, "day"
    if phrase in ("yesterday", "last night", "yesterday evening", "yesterday morning"):
        return today - timedelta(days=1), "day"
    if phrase in ("day before yesterday",):
        return today - timedelta(days=2), "day"
    if phrase == "tomorrow":
        return today + timedelta(days=1), "day"
    if (match := _AGO.match(phrase)) is not None:
        count = _count(match.group(1))
        return None if count is None else _shift(today, -count, match.group(2))
    if (match := _IN.match(phrase)) is not None:
        count = _count(match.group(1))
        return None if count is None else _shift(today, count, match.group(2))
    if (match := _REL.match(phrase)) is not None:
        return _named(today, match.group(1), match.group(2))
    return None


def _count(word: str) -> int | None:
    if word.isdigit():
        return int(word) if 0 < int(word) <= 1000 else None
    return _NUMBERS.get(word)


def _shift(today: date, count: int, unit: str) -> tuple[date, str] | None:
    if unit == "day":
        return today + timedelta(days=count), "day"
    if unit == "week":
        return today + timedelta(weeks=count), "week"
    months = today.year * 12 + today.month - 1 + (count if unit == "month" else 12 * count)
    year, month = divmod(months, 12)
    if not _YEAR_RANGE[0] <= year <= _YEAR_RANGE[1]:
        return None
    return (date(year, month + 1, 1), "month") if unit == "month" else (date(year, 1, 1), "year")


def _named(today: date, which: str, unit: str) -> tuple[date, str] | None:
    step = {"last": -1, "past": -1, "previous": -1, "this": 0, "next": 1, "coming": 1}[which]
    if unit in _WEEKDAYS:
        target = _WEEKDAYS[unit]
        if step < 0:  # the most recent such weekday strictly before the reference day
            return today - timedelta(days=(today.weekday() - target - 1) % 7 + 1), "day"
        if step > 0:  # the next such weekday strictly after it
            return today + timedelta(days=(target - today.weekday() - 1) % 7 + 1), "day"
        return today + timedelta(days=target - today.weekday()), "day"  # within the reference's week
    if unit == "weekend":
        saturday = today + timedelta(days=5 - today.weekday())  # the Saturday of the reference's week
        return saturday + timedelta(weeks=step), "weekend"
    return _shift(today, step, unit)
