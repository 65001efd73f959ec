"""Which time expressions a text contains: a small grammar over its words.

The text is lower-cased and split into words and numbers once; each rule is
anchored at the word an expression starts with ("last", "in", "since", a
number, a month name, ...) and reads the few words after it with dictionary
lookups. That is several times cheaper than running a regular expression per
rule over every text, which matters because every memory is read when it is
written. A text with none of the words an expression needs (a unit, a month, a
weekday, a season, a digit, a deictic or vague word) is rejected after one set
intersection.

Each expression comes out as ``(rule, groups, words)``: the rule's name (the
resolver in mentions.py has one method per rule), its parts, and its words.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .vocabulary import MONTHS, SEASONS, UNITS, WEEKDAYS

_TOKEN = re.compile(r"[a-z0-9]+")
_NUMBER = re.compile(r"\d+(?:st|nd|rd|th)?")
_OPAQUE = "#"
"""What a word of letters and digits mixed ("zq3f2026ab", "a1b2") reads as: no rule starts at it or takes it,
so an id or a hash holding "2026" does not name a year."""
_UNIT_OF = {f"{unit}{plural}": unit for unit in UNITS for plural in ("", "s")}
_WEEKDAY_OF = {**{w: w for w in WEEKDAYS}, **{f"{w}s": w for w in WEEKDAYS}}
_COUNT_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
                "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
                "forty": 40, "fifty": 50, "several": 3, "few": 3, "couple": 2, "dozen": 12}
_MODIFIERS = {"last", "this", "next", "past", "coming"}
_DEICTIC = {"today": "today", "tonight": "today", "yesterday": "yesterday", "tomorrow": "tomorrow"}
_VAGUE = {"recently", "lately", "nowadays", "soon", "earlier"}
_PREPOSITIONS = {"in", "during", "by", "until", "around", "from", "of"}
_CORE = (set(_UNIT_OF) | set(MONTHS) | set(_WEEKDAY_OF) | set(SEASONS) | set(_DEICTIC) | _VAGUE
         | {"morning", "afternoon", "evening", "while", "then", "ages", "other", "these"})
"""Every expression contains one of these words, or a number."""

Groups = dict[str, object]
Expression = tuple[str, Groups, str]
Match = tuple[str, Groups, int]
"""A rule's name, its parts, and the index of the first word after it."""


def _digits(token: str) -> int | None:
    """The value of a number token ("8", "8th"), else None."""
    if not token or not token[0].isdigit():
        return None
    return int(token.rstrip("stndrh"))


def _year(token: str) -> int | None:
    value = _digits(token)
    return value if value is not None and len(token) == 4 and 1900 <= value <= 2099 else None


def _day(token: str) -> int | None:
    value = _digits(token)
    return value if value is not None and len(token) <= 4 and 1 <= value <= 31 else None


class _Words:
    """The words of one text, with safe look-ahead."""

    __slots__ = ("tokens", "n")

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.n = len(tokens)

    def __getitem__(self, i: int) -> str:
        return self.tokens[i] if 0 <= i < self.n else ""

    def count(self, i: int) -> tuple[float, int] | None:
        """A count starting at word ``i`` ("3", "three", "a", "a couple of", "a few", "half a"):
        (value, index after it)."""
        word = self[i]
        value = _digits(word)
        if value is not None and len(word) <= 3:
            return float(value), i + 1
        if word in ("a", "an"):
            nxt = self[i + 1]
            if nxt in ("couple", "few", "dozen"):
                return float(_COUNT_WORDS[nxt]), i + 3 if nxt == "couple" and self[i + 2] == "of" else i + 2
            return 1.0, i + 1
        if word == "half" and self[i + 1] in ("a", "an"):
            return 0.5, i + 2
        if word in _COUNT_WORDS:
            return float(_COUNT_WORDS[word]), i + 2 if word == "couple" and self[i + 1] == "of" else i + 1
        return None

    def month_date(self, i: int) -> Match | None:
        """A date starting with a month name at ``i``: "may 8 [2023]", "may [of] 2023"."""
        month = self[i]
        day = _day(self[i + 1])
        if day is not None:
            year = _year(self[i + 2])
            return "month_day_year", {"month": month, "day": day, "year": year}, i + (3 if year else 2)
        at = i + 2 if self[i + 1] == "of" else i + 1
        year = _year(self[at])
        if year is not None:
            return "month_year", {"month": month, "year": year}, at + 1
        return None

    def day_month(self, i: int) -> Match | None:
        """A date starting with a day of the month at ``i``: "8 [of] may [2023]"."""
        day = _day(self[i])
        if day is None:
            return None
        at = i + 2 if self[i + 1] == "of" else i + 1
        if self[at] not in MONTHS:
            return None
        year = _year(self[at + 1])
        return "day_month_year", {"day": day, "month": self[at], "year": year}, at + (2 if year else 1)


def _from_number(w: _Words, i: int) -> Match | None:
    word = w[i]
    year = _year(word)
    if year is not None:
        month, day = _digits(w[i + 1]), _digits(w[i + 2])  # 2023-05-08 splits into three numbers
        if month is not None and day is not None and 1 <= month <= 12 and 1 <= day <= 31:
            return "iso", {"year": year, "m": month, "d": day}, i + 3
        return "bare_year", {"year": year}, i + 1
    if _digits(word) is not None:
        month, day, year = _digits(word), _day(w[i + 1]), _year(w[i + 2])  # 5/8/2023, month first
        if month is not None and 1 <= month <= 12 and day is not None and year is not None:
            return "iso", {"year": year, "m": month, "d": day}, i + 3
        found = w.day_month(i)
        if found is not None:
            return found
    if word == "a" and w[i + 1] == "while" and w[i + 2] in ("ago", "back"):
        return "vague", {}, i + 3
    counted = w.count(i)
    if counted is None:
        return None
    value, at = counted
    unit = _UNIT_OF.get(w[at])
    if unit is None:
        return None
    after = w[at + 1]
    groups = {"num": value, "unit": unit}
    if after in ("ago", "back", "before"):
        return "ago", groups, at + 2
    if after == "later":
        return "later", groups, at + 2
    if after == "from" and w[at + 2] == "now":
        return "later", groups, at + 3
    if after == "now":
        return "count_now", groups, at + 2
    return None


def _from_the(w: _Words, i: int) -> Match | None:
    nxt = w[i + 1]
    if nxt == "day" and w[i + 3] in ("yesterday", "tomorrow") and w[i + 2] in ("before", "after"):
        return ("day_before" if w[i + 2] == "before" else "day_after"), {}, i + 4
    if nxt == "other" and w[i + 2] in ("day", "week", "night"):
        return "vague", {}, i + 3
    if nxt in SEASONS:
        return _season_year(w, i + 1)
    return w.day_month(i + 1)


def _season_year(w: _Words, i: int) -> Match | None:
    at = i + 2 if w[i + 1] == "of" else i + 1
    year = _year(w[at])
    return ("season_year", {"season": w[i], "year": year}, at + 1) if year is not None else None


def _month_or_year_after(w: _Words, i: int, *, month_rule: str, year_rule: str) -> Match | None:
    """ "<preposition> may [2023]" or "<preposition> 2023" with the preposition at ``i``."""
    nxt = w[i + 1]
    if nxt in MONTHS:
        dated = w.month_date(i + 1)
        if dated is not None and dated[0] == "month_year":
            return dated
        if dated is not None:
            return dated
        return month_rule, {"month": nxt, "year": None}, i + 2
    year = _year(nxt)
    if year is not None:
        return year_rule, {"year": year}, i + 2
    return None


def _from_in(w: _Words, i: int) -> Match | None:
    counted = w.count(i + 1)
    if counted is not None and w[counted[1]] in _UNIT_OF:
        return "in_count", {"num": counted[0], "unit": _UNIT_OF[w[counted[1]]]}, counted[1] + 1
    return _month_or_year_after(w, i, month_rule="in_month", year_rule="year")


def _from_preposition(w: _Words, i: int) -> Match | None:
    return _month_or_year_after(w, i, month_rule="in_month", year_rule="year")


def _from_since(w: _Words, i: int) -> Match | None:
    nxt = w[i + 1]
    year = _year(nxt)
    if year is not None:
        return "since_year", {"year": year}, i + 2
    if nxt in MONTHS:
        year = _year(w[i + 2])
        return "since_month", {"month": nxt, "year": year}, i + (3 if year else 2)
    return None


def _from_for(w: _Words, i: int) -> Match | None:
    at = i + 3 if w[i + 1] == "the" and w[i + 2] in ("last", "past") else i + 1
    counted = w.count(at)
    if counted is None or w[counted[1]] not in _UNIT_OF:
        return None
    return "for_count", {"num": counted[0], "unit": _UNIT_OF[w[counted[1]]]}, counted[1] + 1


def _from_modifier(w: _Words, i: int) -> Match | None:
    mod, nxt = w[i], w[i + 1]
    if nxt in _WEEKDAY_OF:
        return "modified_weekday", {"mod": mod, "weekday": _WEEKDAY_OF[nxt]}, i + 2
    if nxt in SEASONS:
        return "modified_season", {"mod": mod, "season": nxt}, i + 2
    if nxt in MONTHS and nxt != "may":  # "this may ..." is the verb far more often than the month
        return "modified_month", {"mod": mod, "month": nxt}, i + 2
    if nxt in ("week", "weekend", "month", "year", "night"):
        return "modified_unit", {"mod": mod, "unit": nxt}, i + 2
    if mod == "this" and nxt in ("morning", "afternoon", "evening"):
        return "today", {}, i + 2
    return None


def _from_earlier(w: _Words, i: int) -> Match | None:
    if w[i + 1] == "this" and w[i + 2] in ("week", "month", "year"):
        return "earlier_unit", {"mod": w[i], "unit": w[i + 2]}, i + 3
    return ("vague", {}, i + 1) if w[i] == "earlier" else None


def _from_on(w: _Words, i: int) -> Match | None:
    day = _WEEKDAY_OF.get(w[i + 1])
    return ("on_weekday", {"weekday": day}, i + 2) if day is not None else None


def _from_month(w: _Words, i: int) -> Match | None:
    return w.month_date(i) if w[i] != "may" or _day(w[i + 1]) or _year(w[i + 1]) else None


def _deictic(w: _Words, i: int) -> Match | None:
    return _DEICTIC[w[i]], {}, i + 1


def _vague(w: _Words, i: int) -> Match | None:
    word = w[i]
    if word in _VAGUE:
        return "vague", {}, i + 1
    if word == "these" and w[i + 1] == "days":
        return "vague", {}, i + 2
    if word == "back" and w[i + 1] == "then":
        return "vague", {}, i + 2
    if word == "some" and w[i + 1] == "time" and w[i + 2] == "ago":
        return "vague", {}, i + 3
    if (word == "ages" or word in _UNIT_OF) and w[i + 1] == "ago":  # "years ago": no count
        return "vague", {}, i + 2
    return None


_ANCHORS: dict[str, list[Callable[[_Words, int], Match | None]]] = {}


def _anchor(words, rule) -> None:
    for word in words:
        _ANCHORS.setdefault(word, []).append(rule)


_anchor(["a", "an", "half", *_COUNT_WORDS], _from_number)
_anchor(["the"], _from_the)
_anchor(["in"], _from_in)
_anchor(_PREPOSITIONS - {"in"}, _from_preposition)
_anchor(["since"], _from_since)
_anchor(["for", "over"], _from_for)
_anchor(_MODIFIERS, _from_modifier)
_anchor(["earlier", "later"], _from_earlier)
_anchor(["on", "every"], _from_on)
_anchor(MONTHS, _from_month)
_anchor(SEASONS, lambda w, i: _season_year(w, i))
_anchor(_DEICTIC, _deictic)
_anchor([*_VAGUE, "these", "back", "some", "ages", *_UNIT_OF], _vague)


def expressions(text: str) -> list[Expression]:
    """The time expressions of ``text`` in order, none overlapping (the one starting first wins; at the
    same word, the first rule that matches)."""
    lower = text.lower()
    raw = _TOKEN.findall(lower)
    has_digit = _DIGIT.search(lower) is not None
    # Without a digit every word is letters only, as read below: most texts stop here, unread.
    if not has_digit and _CORE.isdisjoint(raw):
        return []
    tokens = raw if not has_digit else [t if t.isalpha() or _NUMBER.fullmatch(t) else _OPAQUE for t in raw]
    words = _Words(tokens)
    found: list[Expression] = []
    end = 0
    # An expression holds a core word (or a number) at most _LEAD words after the word it starts with,
    # so only those stretches are read.
    for core in [i for i, t in enumerate(tokens) if t in _CORE or (has_digit and t[0].isdigit())]:
        i = max(end, core - _LEAD)
        while i <= core:
            token = tokens[i]
            for rule in _ANCHORS.get(token) or (_NUMBER_RULES if token[0].isdigit() else ()):
                match = rule(words, i)
                if match is not None:
                    name, groups, end = match
                    found.append((name, groups, " ".join(tokens[i:end])))
                    i = end - 1
                    break
            i += 1
        end = max(end, i)
    return found


_NUMBER_RULES = [_from_number]
_DIGIT = re.compile(r"\d")
_LEAD = 4
"""Most words an expression has before its first core word ("for the last two weeks")."""
