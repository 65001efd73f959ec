"""Find the time expressions of a text and resolve them against the text's own date.

A conversational turn says when things happened relative to when it was said
("yesterday", "two weeks ago", "last Fri", "in May", "since 2016"). Given the
turn's event time, each expression resolves to an interval of calendar time,
so that a question about a time ("what did she do in June?") can be matched
against what the turn talks about, not only against when it was said.

The grammar covers what English uses for dates and spans of time:

- deictic days: today, tonight, this morning, yesterday, last night, tomorrow,
  the day before yesterday, the day after tomorrow;
- a modifier and a calendar unit: last/this/next/past/coming week, weekend,
  month, year, summer, spring, fall/autumn, winter, and a weekday
  (Monday ... Sunday, also Mon, Tue, Tues, Wed, Thu, Thur, Thurs, Fri, Sat, Sun);
- counts of units: "N units ago", "in N units", "N units later/earlier",
  with N a numeral or a number word (a, an, one ... twenty, a couple of,
  a few, several);
- spans: "for N units", "N units now", "since <year|month|...>";
- calendar dates: month names with an optional day and year ("May 2023",
  "8 May, 2023", "May 8th", "the 4th of July"), ISO dates (2023-05-08),
  numeric dates (5/8/2023, month first), four-digit years 1900-2099;
- vague references: recently, lately, the other day, a while ago, earlier,
  soon (found, but not resolved to an interval).

Times are UTC epoch seconds; intervals are half-open [lo, hi).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from .grammar import expressions
from .vocabulary import MONTHS, SEASONS, UNITS, WEEKDAYS

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Mention:
    """One time expression found in a text."""

    kind: str
    """"point" (a day, week, month, season or year the text refers to), "span" (a stretch of time up
    to the text's date: "for three years", "since 2016") or "vague" ("recently": no interval)."""
    words: str
    """The expression's words, lower-cased and single-spaced ("last fri", "8 may 2023")."""
    lo: float | None = None
    hi: float | None = None
    """The resolved interval (UTC epoch seconds, half-open), None when it cannot be resolved."""
    month_only: int | None = None
    """For a month named without a year or a day and no date to resolve against: that month (1-12)."""


def _day_start(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _ts(d: date | datetime) -> float:
    if not isinstance(d, datetime):
        d = datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
    return d.timestamp()


def _month_span(year: int, month: int) -> tuple[float, float]:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return _ts(date(year, month, 1)), _ts(nxt)


def _day_span(d: date) -> tuple[float, float]:
    return _ts(d), _ts(d + timedelta(days=1))


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _season_span(year: int, season: str) -> tuple[float, float]:
    start = SEASONS[season]
    first = date(year, start, 1)
    end_month = start + 3
    last = date(year + (end_month > 12), (end_month - 1) % 12 + 1, 1)
    return _ts(first), _ts(last)


class _Resolver:
    """Resolves one rule's match against a reference time (``ref``; None: nothing resolves but
    absolute dates)."""

    def __init__(self, ref: float | None):
        self.ref = _utc(ref)

    def __call__(self, rule: str, g: dict[str, str | None]) -> tuple[str, float | None, float | None, int | None]:
        method = getattr(self, "_" + rule)
        return method(g)

    # ---------------------------------------------------------------- absolute dates

    def _nearest_year(self, month: int, day: int = 1) -> int | None:
        """The year of the latest such date no later than a month after the reference (speech about a
        month without a year is mostly about the recent past or the near future)."""
        if self.ref is None:
            return None
        year = self.ref.year
        candidate = _safe_date(year, month, min(day, 28))
        if candidate is not None and _ts(candidate) > self.ref.timestamp() + 31 * DAY:
            year -= 1
        return year

    def _date(self, year: int | None, month: int, day: int | None):
        if year is None:
            year = self._nearest_year(month, day or 1)
        if year is None:
            return ("point", None, None, month if day is None else None)
        if day is None:
            return ("point", *_month_span(year, month), None)
        d = _safe_date(year, month, day)
        return ("point", *_day_span(d), None) if d else ("point", None, None, None)

    def _iso(self, g):
        return self._date(int(g["year"]), int(g["m"]), int(g["d"])) if 1 <= int(g["m"]) <= 12 else ("vague", None, None, None)

    _numeric = _iso

    def _day_month_year(self, g):
        return self._date(int(g["year"]) if g["year"] else None, MONTHS[g["month"].lower()], int(g["day"]))

    _month_day_year = _day_month_year

    def _month_year(self, g):
        return self._date(int(g["year"]), MONTHS[g["month"].lower()], None)

    def _in_month(self, g):
        return self._date(None, MONTHS[g["month"].lower()], None)

    def _year(self, g):
        year = int(g["year"])
        return ("point", _ts(date(year, 1, 1)), _ts(date(year + 1, 1, 1)), None)

    _bare_year = _year

    def _season_year(self, g):
        return ("point", *_season_span(int(g["year"]), g["season"].lower()), None)

    # ---------------------------------------------------------------- relative to the reference

    def _offset_days(self, days: float, width_days: float) -> tuple[str, float | None, float | None, int | None]:
        if self.ref is None:
            return ("point", None, None, None)
        centre = _day_start(self.ref).timestamp() + days * DAY
        half = max(width_days, 1.0) / 2
        return ("point", centre - (half - 0.5) * DAY if width_days > 1 else centre,
                centre + (half + 0.5) * DAY if width_days > 1 else centre + DAY, None)

    def _today(self, g):
        return self._offset_days(0, 1)

    def _yesterday(self, g):
        return self._offset_days(-1, 1)

    def _tomorrow(self, g):
        return self._offset_days(1, 1)

    def _day_before(self, g):
        return self._offset_days(-2, 1)

    def _day_after(self, g):
        return self._offset_days(2, 1)

    @staticmethod
    def _count(g) -> tuple[float, float]:
        """(count, unit length in days)."""
        return float(g["num"]), UNITS[g["unit"]]

    def _counted(self, g, sign: float):
        n, unit = self._count(g)
        # The further back, the rounder the number: allow half a unit either side (at least a day).
        return self._offset_days(sign * n * unit, max(unit, 1.0))

    def _ago(self, g):
        return self._counted(g, -1.0)

    def _in_count(self, g):
        return self._counted(g, 1.0)

    _later = _in_count

    def _span_back(self, g):
        if self.ref is None:
            return ("span", None, None, None)
        n, unit = self._count(g)
        end = self.ref.timestamp()
        return ("span", end - n * unit * DAY, end, None)

    _for_count = _span_back
    _count_now = _span_back

    def _since_year(self, g):
        end = self.ref.timestamp() if self.ref else None
        start = _ts(date(int(g["year"]), 1, 1))
        return ("span", start, end if end and end > start else _ts(date(int(g["year"]) + 1, 1, 1)), None)

    def _since_month(self, g):
        month = MONTHS[g["month"].lower()]
        year = int(g["year"]) if g["year"] else self._nearest_year(month)
        if year is None or self.ref is None:
            return ("span", None, None, None)
        start = _month_span(year, month)[0]
        end = self.ref.timestamp()
        return ("span", start, max(end, start + DAY), None)

    def _week_start(self) -> datetime:
        day = _day_start(self.ref)
        return day - timedelta(days=day.weekday())

    def _modified_unit(self, g):
        if self.ref is None:
            return ("point", None, None, None)
        mod, unit = g["mod"].lower(), g["unit"].lower()
        step = {"last": -1, "past": -1, "this": 0, "next": 1, "coming": 1}[mod]
        if unit == "night":
            return self._offset_days(-1 if step < 0 else step, 1)
        if unit in ("week", "weekend"):
            start = self._week_start() + timedelta(days=7 * step)
            if unit == "weekend":
                start += timedelta(days=5)
                return ("point", start.timestamp(), (start + timedelta(days=2)).timestamp(), None)
            return ("point", start.timestamp(), (start + timedelta(days=7)).timestamp(), None)
        if unit == "month":
            index = self.ref.year * 12 + self.ref.month - 1 + step
            return ("point", *_month_span(index // 12, index % 12 + 1), None)
        year = self.ref.year + step
        return ("point", _ts(date(year, 1, 1)), _ts(date(year + 1, 1, 1)), None)

    def _earlier_unit(self, g):
        if self.ref is None:
            return ("point", None, None, None)
        unit = g["unit"].lower()
        if unit == "week":
            start = self._week_start()
        elif unit == "month":
            start = _day_start(self.ref).replace(day=1)
        else:
            start = _day_start(self.ref).replace(month=1, day=1)
        end = self.ref.timestamp() + DAY
        if g["mod"].lower() == "later":
            return ("point", self.ref.timestamp(), end + 31 * DAY, None)
        return ("point", start.timestamp(), end, None)

    def _weekday_near(self, weekday: int, step: int) -> tuple[str, float | None, float | None, int | None]:
        if self.ref is None:
            return ("point", None, None, None)
        today = _day_start(self.ref)
        if step < 0:  # the latest such weekday strictly before the reference day
            back = (today.weekday() - weekday - 1) % 7 + 1
            day = today - timedelta(days=back)
        elif step > 0:  # the first one strictly after
            day = today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)
        else:  # this <weekday>: the one of the reference's week
            day = self._week_start() + timedelta(days=weekday)
        return ("point", day.timestamp(), (day + timedelta(days=1)).timestamp(), None)

    def _modified_weekday(self, g):
        step = {"last": -1, "past": -1, "this": 0, "next": 1, "coming": 1}[g["mod"].lower()]
        return self._weekday_near(WEEKDAYS[g["weekday"].lower()], step)

    def _on_weekday(self, g):
        # "On Friday" in conversation mostly reports the last one; either way, within a week.
        return self._weekday_near(WEEKDAYS[g["weekday"].lower()], -1)

    def _modified_season(self, g):
        if self.ref is None:
            return ("point", None, None, None)
        season, mod = g["season"].lower(), g["mod"].lower()
        now = self.ref.timestamp()
        # The occurrences of the season around the reference: the latest one starting before it and the
        # one after that.
        year = self.ref.year
        lo, hi = _season_span(year, season)
        while lo > now:
            year -= 1
            lo, hi = _season_span(year, season)
        if mod in ("last", "past"):
            return ("point", *(_season_span(year - 1, season) if now < hi else (lo, hi)), None)
        if mod in ("next", "coming"):
            return ("point", *_season_span(year + 1, season), None)
        if now < hi:  # "this summer" during the summer
            return ("point", lo, hi, None)
        upcoming = _season_span(year + 1, season)
        # Otherwise the nearer of the one just past and the one to come.
        return ("point", *((lo, hi) if now - hi <= upcoming[0] - now else upcoming), None)

    def _modified_month(self, g):
        month = MONTHS[g["month"].lower()]
        if self.ref is None:
            return ("point", None, None, month)
        mod = g["mod"].lower()
        year = self.ref.year
        if mod in ("last", "past"):
            year -= 1 if month >= self.ref.month else 0
        elif mod in ("next", "coming"):
            year += 1 if month <= self.ref.month else 0
        return ("point", *_month_span(year, month), None)

    def _vague(self, g):
        return ("vague", None, None, None)


def find_mentions(text: str, ref: float | None = None) -> list[Mention]:
    """Every time expression of ``text``, in order, resolved against ``ref`` (UTC epoch seconds) when given.

    Expressions do not overlap: "8 May 2023" is one date, not a day and a year."""
    found = expressions(text) if text else []
    if not found:
        return []
    resolve = _Resolver(ref)
    mentions = []
    for rule, groups, words in found:
        try:
            kind, lo, hi, month_only = resolve(rule, groups)
        except (ValueError, OverflowError, OSError):  # a date past what the calendar holds (year 10000, ...)
            kind, lo, hi, month_only = "point", None, None, None
        mentions.append(Mention(kind, words, lo, hi, month_only))
    return mentions


def month_bits(said: float | None, talks_from: float | None, talks_to: float | None) -> int:
    """Bit m-1 set for the calendar month m of ``said`` and for the months ``[talks_from, talks_to)``
    starts and ends in (UTC epoch seconds; None: none)."""
    bits = 0
    for t in (said, talks_from, None if talks_to is None else talks_to - 1.0):
        moment = _utc(t)
        if moment is not None:
            bits |= 1 << (moment.month - 1)
    return bits


def _utc(t: float | None) -> datetime | None:
    """``t`` (UTC epoch seconds) as a datetime; None for None, NaN and times the calendar cannot hold
    (an event_time is any float a client sends)."""
    if t is None or t != t:
        return None
    try:
        return datetime.fromtimestamp(t, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


def resolved_hull(mentions: list[Mention]) -> tuple[float, float] | None:
    """The smallest interval covering every resolved mention (None if none resolved)."""
    spans = [(m.lo, m.hi) for m in mentions if m.lo is not None and m.hi is not None]
    if not spans:
        return None
    return min(lo for lo, _ in spans), max(hi for _, hi in spans)
