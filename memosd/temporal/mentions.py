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

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

DAY = 86400.0

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
WEEKDAYS = {"monday": 0, "mon": 0, "tuesday": 1, "tue": 1, "tues": 1, "wednesday": 2, "wed": 2,
            "thursday": 3, "thu": 3, "thur": 3, "thurs": 3, "friday": 4, "fri": 4, "saturday": 5,
            "sat": 5, "sunday": 6, "sun": 6}
SEASONS = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 12}
"""Northern-hemisphere meteorological seasons: the month each one starts in (three months long)."""
NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
                "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
                "thirty": 30, "forty": 40, "fifty": 50, "a couple of": 2, "a couple": 2, "couple of": 2,
                "a few": 3, "few": 3, "several": 3, "a dozen": 12, "half a": 0.5}
UNITS = {"day": 1.0, "night": 1.0, "week": 7.0, "weekend": 7.0, "month": 30.44, "year": 365.25,
         "decade": 3652.5}
"""Length of each unit in days."""

_NUM = r"(?P<num>\d{1,3}|" + "|".join(sorted((re.escape(w) for w in NUMBER_WORDS), key=len, reverse=True)) + r")"
_UNIT = r"(?P<unit>day|night|week(?:end)?|month|year|decade)s?"
_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_WEEKDAY = r"(?P<weekday>" + "|".join(sorted(WEEKDAYS, key=len, reverse=True)) + r")\.?"
_SEASON = r"(?P<season>spring|summer|fall|autumn|winter)"
_DAYNUM = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"


@dataclass(frozen=True, slots=True)
class Mention:
    """One time expression found in a text."""

    kind: str
    """"point" (a day, week, month, season or year the text refers to), "span" (a stretch of time up
    to the text's date: "for three years", "since 2016") or "vague" ("recently": no interval)."""
    start: int
    end: int
    """Character offsets of the expression in the text."""
    lo: float | None = None
    hi: float | None = None
    """The resolved interval (UTC epoch seconds, half-open), None when it cannot be resolved."""
    month_only: int | None = None
    """For a month named without a year or a day and no date to resolve against: that month (1-12)."""


def _rule(pattern: str) -> re.Pattern:
    return re.compile(r"(?<![\w-])" + pattern + r"(?![\w-])", re.IGNORECASE)


_UNIT_WORDS = {f"{u}{s}" for u in UNITS for s in ("", "s")}
_MONTH_WORDS = set(MONTHS)
_WEEKDAY_WORDS = set(WEEKDAYS) | {f"{w}s" for w in WEEKDAYS}
_MODIFIERS = {"last", "this", "next", "past", "coming"}
_DIGITS = "<digit>"
"""Stands for any word with a digit in a rule's trigger set."""

# Longest and most specific patterns first: a match claims its characters, later rules skip them.
# Each rule names the words one of which a text must contain for the rule to be tried (regular
# expressions with large alternations are slow; most turns have no time expression at all).
_RULES: list[tuple[str, set[str], re.Pattern]] = [
    ("iso", {_DIGITS}, _rule(r"(?P<year>(?:19|20)\d\d)-(?P<m>[01]?\d)-(?P<d>[0-3]?\d)")),
    ("numeric", {_DIGITS}, _rule(r"(?P<m>[01]?\d)/(?P<d>[0-3]?\d)/(?P<year>(?:19|20)\d\d)")),
    ("day_month_year", _MONTH_WORDS,
     _rule(r"(?:the\s+)?" + _DAYNUM + r"\s+(?:of\s+)?" + _MONTH + r",?(?:\s+" + _YEAR + r")?")),
    ("month_day_year", _MONTH_WORDS, _rule(_MONTH + r"\s+" + _DAYNUM + r"(?:,?\s+" + _YEAR + r")?")),
    ("month_year", _MONTH_WORDS, _rule(_MONTH + r",?\s+(?:of\s+)?" + _YEAR)),
    ("day_before", {"yesterday"}, _rule(r"the\s+day\s+before\s+yesterday")),
    ("day_after", {"tomorrow"}, _rule(r"the\s+day\s+after\s+tomorrow")),
    ("ago", {"ago", "back", "before"}, _rule(_NUM + r"\s+" + _UNIT + r"\s+(?:ago|back|before)")),
    ("in_count", _UNIT_WORDS, _rule(r"in\s+" + _NUM + r"\s+" + _UNIT)),
    ("later", {"later", "from"}, _rule(_NUM + r"\s+" + _UNIT + r"\s+(?:later|from\s+now)")),
    ("for_count", _UNIT_WORDS,
     _rule(r"(?:for|over)\s+(?:the\s+(?:last|past)\s+)?" + _NUM + r"\s+" + _UNIT)),
    ("count_now", {"now"}, _rule(_NUM + r"\s+" + _UNIT + r"\s+now")),
    ("since_year", {"since"}, _rule(r"since\s+" + _YEAR)),
    ("since_month", {"since"}, _rule(r"since\s+" + _MONTH + r"(?:\s+" + _YEAR + r")?")),
    ("modified_weekday", _WEEKDAY_WORDS, _rule(r"(?P<mod>last|this|next|past|coming)\s+" + _WEEKDAY)),
    ("modified_season", set(SEASONS), _rule(r"(?P<mod>last|this|next|past|coming)\s+" + _SEASON)),
    ("modified_month", _MONTH_WORDS, _rule(r"(?P<mod>last|this|next|past|coming)\s+" + _MONTH)),
    ("modified_unit", {"week", "weekend", "month", "year", "night"},
     _rule(r"(?P<mod>last|this|next|past|coming)\s+(?P<unit>week(?:end)?|month|year|night)")),
    ("earlier_unit", {"earlier", "later"}, _rule(r"(?P<mod>earlier|later)\s+this\s+(?P<unit>week|month|year)")),
    ("today", {"today", "tonight", "morning", "afternoon", "evening"},
     _rule(r"today|tonight|this\s+(?:morning|afternoon|evening)")),
    ("yesterday", {"yesterday", "night"}, _rule(r"yesterday|last\s+night")),
    ("tomorrow", {"tomorrow"}, _rule(r"tomorrow")),
    ("on_weekday", _WEEKDAY_WORDS, _rule(r"(?:on|every)\s+" + _WEEKDAY + r"s?")),
    ("season_year", set(SEASONS), _rule(r"(?:the\s+)?" + _SEASON + r"\s+(?:of\s+)?" + _YEAR)),
    ("in_month", _MONTH_WORDS, _rule(r"(?:in|during|since|by|until|last|this)\s+" + _MONTH)),
    ("year", {_DIGITS}, _rule(r"(?:in|since|of|from|during|by|until|around)\s+" + _YEAR)),
    ("bare_year", {_DIGITS}, _rule(_YEAR)),
    ("vague", {"recently", "lately", "other", "while", "ago", "earlier", "soon", "days", "nowadays", "then",
               "back"},
     _rule(r"recently|lately|the\s+other\s+day|a\s+while\s+(?:ago|back)|some\s+time\s+ago|"
           r"earlier|soon|the\s+other\s+week|these\s+days|nowadays|back\s+then|ages\s+ago|"
           r"years\s+ago|months\s+ago|weeks\s+ago|days\s+ago")),
]
_TRIGGERS = set().union(*(words for _, words, _ in _RULES)) - {_DIGITS}
_RULES_OF: dict[str, list[int]] = {}
for _index, (_, _words, _) in enumerate(_RULES):
    for _word in _words:
        _RULES_OF.setdefault(_word, []).append(_index)
_WORD = re.compile(r"[a-z]+|\d+")
_REACH = 48
"""Characters either side of a trigger word that a rule's match can reach."""


_DIGIT = re.compile(r"\d")


def _positions(lower: str, words: set[str]) -> list[int]:
    """Sorted offsets of ``words`` (and of digits, for _DIGITS) in ``lower`` (substring hits are fine:
    they only widen the windows searched)."""
    out: list[int] = []
    for word in words:
        if word == _DIGITS:
            out.extend(m.start() for m in _DIGIT.finditer(lower))
            continue
        at = lower.find(word)
        while at >= 0:
            out.append(at)
            at = lower.find(word, at + 1)
    out.sort()
    return out


def _windows(positions: list[int], size: int) -> list[tuple[int, int]]:
    """Merged [lo, hi) windows of _REACH characters around sorted ``positions``."""
    out: list[tuple[int, int]] = []
    for pos in positions:
        lo, hi = max(0, pos - _REACH), min(size, pos + _REACH)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


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


def _number(text: str) -> float | None:
    text = " ".join(text.lower().split())
    if text.isdigit():
        return float(text)
    return NUMBER_WORDS.get(text)


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
        self.ref = None if ref is None else datetime.fromtimestamp(ref, tz=timezone.utc)

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
    def _count(g) -> tuple[float, float] | None:
        n = _number(g["num"])
        if n is None:
            return None
        unit = UNITS[g["unit"].lower().rstrip("s")]
        return n, unit

    def _counted(self, g, sign: float):
        counted = self._count(g)
        if counted is None:
            return ("vague", None, None, None)
        n, unit = counted
        # The further back, the rounder the number: allow half a unit either side (at least a day).
        return self._offset_days(sign * n * unit, max(unit, 1.0))

    def _ago(self, g):
        return self._counted(g, -1.0)

    def _in_count(self, g):
        return self._counted(g, 1.0)

    _later = _in_count

    def _span_back(self, g):
        counted = self._count(g)
        if counted is None or self.ref is None:
            return ("span", None, None, None)
        n, unit = counted
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

    Expressions do not overlap: the more specific pattern wins ("8 May 2023" is one date, not a day
    and a year)."""
    if not text:
        return []
    lower = text.lower()
    words = _WORD.findall(lower)
    present = _TRIGGERS.intersection(words)
    if any(w[0].isdigit() for w in words):
        present.add(_DIGITS)
    if not present:
        return []
    resolve = _Resolver(ref)
    taken: list[tuple[int, int]] = []
    found: list[Mention] = []
    for index in sorted({i for word in present for i in _RULES_OF[word]}):
        rule, needs, pattern = _RULES[index]
        # Every match of a rule contains one of its trigger words and is shorter than _REACH, so it is
        # only tried in the windows around those words (large alternations are slow to run everywhere).
        for lo, hi in _windows(_positions(lower, needs & present), len(text)):
            for match in pattern.finditer(text, lo, hi):
                start, end = match.span()
                if any(start < e and s < end for s, e in taken):
                    continue
                kind, lo_t, hi_t, month_only = resolve(rule, match.groupdict())
                taken.append((start, end))
                found.append(Mention(kind, start, end, lo_t, hi_t, month_only))
    found.sort(key=lambda m: m.start)
    return found


def resolved_hull(mentions: list[Mention]) -> tuple[float, float] | None:
    """The smallest interval covering every resolved mention (None if none resolved)."""
    spans = [(m.lo, m.hi) for m in mentions if m.lo is not None and m.hi is not None]
    if not spans:
        return None
    return min(lo for lo, _ in spans), max(hi for _, hi in spans)
