"""The built-in ``extractive`` consolidation policy: deterministic, offline, fast.

It condenses a closed page of turns without a model, by picking and lightly
annotating sentences of the page itself:

* summary: the one or two most central sentences (vocabulary shared with the
  other turns of the page), speaker kept, in page order, at most 300 chars;
* keywords: up to 8 salient terms, frequency across the page times a word
  length rarity proxy;
* entities: speakers ("Name: ..." prefixes) and proper nouns, with the turns
  naming them;
* facts: informative sentences (first-person statements, dates, numbers,
  proper nouns), speaker kept, with relative dates ("yesterday", "last
  year") resolved against the turn's session date.

It is the fallback when another policy fails, so it must never raise and must
stay cheap (about a millisecond per 8-turn page). It is a pure function of the
page: no clock, no randomness, no network; the only state is a per-process
stem cache that cannot change results. :class:`ExtractivePolicy` is a plain
module-level class, so it pickles by reference into a ``ProcessPoolExecutor``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from memosd.plugins.api import Consolidation, EntityMention, Fact, PageView, TurnView
from memosd.retrieval.stopwords import STOPWORDS
from memosd.retrieval.tokenizer import Tokenizer

__all__ = ["ExtractivePolicy", "consolidate_page", "SUMMARY_CHARS", "SENTENCE_CHARS"]

SUMMARY_CHARS = 300
"""Longest summary returned."""
SENTENCE_CHARS = 400
"""Sentences are cut to this length (facts carry one sentence plus the speaker)."""
MAX_KEYWORDS = 8
MAX_FACTS_PER_TURN = 2
MAX_FACTS = 24
MAX_ENTITIES = 48
# Only the head of a huge turn is read: a page is a handful of chat turns, and
# a megabyte paste must not make the fallback policy slow.
MAX_TURN_CHARS = 20_000

# --------------------------------------------------------------------------- vocabulary

# Interjections and politeness: they make a sentence look long without saying
# anything ("Wow, thanks so much, that's great!"), so they do not count as
# content, never become keywords and never start a proper-noun run.
_FILLERS = frozenset(
    """
    hey hi hello hiya yo bye goodbye thanks thank thx ty wow whoa oh ah aw aww ooh hmm um uh
    yeah yea yep yup yes nope ok okay sure cool great awesome nice good glad lol haha hahaha omg
    btw tbh idk really totally so just well pretty super kinda gonna wanna gotta congrats
    congratulations sorry please cheers welcome agree exactly indeed right alright fine yay dear
    buddy guys mate pal absolutely definitely amazing wonderful fantastic lovely sweet
    """.split()
)
# Words too generic to describe a page (on top of fillers and stopwords).
_GENERIC = frozenset(
    """
    thing things stuff lot lots like love get got getting go going goes went make made making
    know think feel felt see seen say said tell told want let would could might may must also
    even still always never ever much many one something anything everything nothing someone
    anyone everyone time times day days way ways yesterday today tomorrow tonight week weeks
    month months year years ago last next recently lately maybe guess mean sounds sound seems
    look looks looking keep take taking came come coming back happen happened happening talk soon
    done doing lots glad bit
    """.split()
)
_FIRST_PERSON = frozenset(
    "i i'm i've i'd i'll im ive my me mine myself we we're we've we'd we'll our ours us ourselves".split()
)
# "Name:" prefixes that are labels, not speakers.
_NOT_SPEAKERS = frozenset(
    """
    note notes update edit ps fyi todo warning error question answer summary tip reminder important re fw
    today yesterday tomorrow
    """.split()
)
# Lower-case role names accepted as speakers (agent transcripts).
_ROLES = frozenset("user assistant system human ai bot agent".split())
_ACRONYM_FILLERS = frozenset("OK OMG LOL BTW TBH IDK AM PM ASAP FYI".split())

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"),
            ("may",), ("june", "jun"), ("july", "jul"), ("august", "aug"),
            ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"), ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_WEEKDAYS = {
    name: number
    for number, names in enumerate(
        (("monday", "mon"), ("tuesday", "tue", "tues"), ("wednesday", "wed"), ("thursday", "thu", "thurs"),
         ("friday", "fri"), ("saturday", "sat"), ("sunday", "sun")),
    )
    for name in names
}
# Month and weekday names are dates, not entities or keywords.
_CALENDAR = frozenset(_MONTHS) | frozenset(_WEEKDAYS)

_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "couple": 2, "few": 3, "several": 3,
}
# Number words that make a sentence factual ("she turned five"); "one" is too common to count.
_COUNT_WORDS = frozenset(
    """
    two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
    seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred
    thousand million billion dozen
    """.split()
)

# --------------------------------------------------------------------------- patterns

# A "Name: " prefix: one to four words, the first capitalised (checked in code).
_SPEAKER = re.compile(r"\s*([^\W\d_][\w'’.\-]{0,30}(?: [^\W\d_][\w'’.\-]{0,30}){0,3})[ \t]*:\s+(?=\S)")
# Bracketed asides such as LoCoMo's "[shared image: a photo of ...]".
_ASIDE = re.compile(r"\[([^\[\]]{1,2000})\]")
_ASIDE_LABEL = re.compile(r"[^\W\d_][\w ]{0,30}:\s+")  # "shared image: " in front of the caption
# Sentence ends: terminal punctuation (plus closing quotes/brackets) before whitespace, or newlines.
_BOUNDARY = re.compile(r"[.!?…]+[\"'’”)\]]*(?=\s)|\n")
_ABBREVIATIONS = frozenset("mr mrs ms dr st mt jr sr prof vs etc e.g i.e inc ltd no co approx".split())
_WORD_BEFORE = re.compile(r"([\w.]+)$")
# Surface words: apostrophes and hyphens inside a word keep it whole ("I'm", "self-care").
_SURFACE = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
_DIGITS = re.compile(r"\d")

# How many units: "3", "two", "a", "a couple of", "a few" (see _count).
_N = (
    r"(?P<n>\d{1,3}|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
    r"|(?:a\s+)?couple(?:\s+of)?|(?:a\s+)?few|several)"
)
_UNIT = r"(?P<unit>day|week|month|year)s?"
_RELATIVE = re.compile(
    r"\b(?:"
    r"(?P<day>the\s+day\s+before\s+yesterday|the\s+day\s+after\s+tomorrow|yesterday|today|tonight|tomorrow"
    r"|last\s+night|this\s+(?:morning|afternoon|evening))"
    rf"|{_N}\s+{_UNIT}\s+(?P<ago>ago|from\s+now)"
    rf"|in\s+{_N.replace('?P<n>', '?P<n2>')}\s+{_UNIT.replace('?P<unit>', '?P<unit2>')}"
    r"|(?P<which>last|this|next|past|coming)\s+(?P<period>week|month|year|weekend"
    r"|monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
    r")\b",
    re.IGNORECASE,
)
_MONTH_NAMES = "|".join(sorted((m.capitalize() for m in _MONTHS), key=len, reverse=True))
_DAY = r"(?P<d>\d{1,2})(?:st|nd|rd|th)?"
# Case-sensitive: "May" is a month only when capitalised and next to a day, year or "last/next".
_EXPLICIT = re.compile(
    r"\b(?:"
    rf"{_DAY}\s+(?:of\s+)?(?P<m>{_MONTH_NAMES})\.?,?(?:\s+(?P<y>\d{{4}}))?"
    rf"|(?P<m2>{_MONTH_NAMES})\.?\s+(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(?P<y2>\d{{4}}))?"
    rf"|(?P<m3>{_MONTH_NAMES})\.?,?\s+(?P<y3>\d{{4}})"
    rf"|(?P<which>[Ll]ast|[Nn]ext|[Tt]his)\s+(?P<m4>{_MONTH_NAMES})"
    r"|(?P<iy>\d{4})-(?P<im>\d{2})-(?P<id>\d{2})"
    r"|(?:[Ii]n|[Ss]ince|[Dd]uring|[Uu]ntil|[Aa]round|[Bb]ack in)\s+(?P<y4>(?:19|20)\d{2})"
    r")\b(?!-)"
)

# Every alternative of _RELATIVE and _EXPLICIT without a digit needs one of these words, whole.
_DATE_WORDS = frozenset(
    {"yesterday", "today", "tonight", "tomorrow", "night", "morning", "afternoon", "evening", "weekend",
     "day", "days", "week", "weeks", "month", "months", "year", "years",
     "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"} | set(_MONTHS))
_ANY_DIGIT = re.compile(r"\d")
_LETTERS = re.compile(r"[a-z]+")


# --------------------------------------------------------------------------- sentences


@dataclass(slots=True)
class _Sentence:
    """One sentence of a turn, with what the selectors need precomputed."""

    order: int  # position in the page, for ties and output order
    turn: int  # index of the turn in the page
    turn_id: int
    speaker: str | None
    text: str
    aside: bool  # a bracketed aside (image caption): entities/keywords only
    words: list[tuple[str, str, int, int]] = field(default_factory=list)  # (surface, casefolded, start, end)
    stems: list[str] = field(default_factory=list)  # content stems, in order
    content: int = 0  # count of content words
    topic: list[str] = field(default_factory=list)  # content stems of non-generic words (centrality)
    person: bool = False  # has a first-person word (I, my, we...)
    number: bool = False  # has digits or a count word ("five")

    @property
    def question(self) -> bool:
        return self.text.rstrip("\"'’”)] ").endswith("?")


_TOKENIZER: Tokenizer | None = None
_STEM_CACHE: dict[str, tuple[str, ...]] = {}
_STEM_CACHE_LIMIT = 50_000


def _stems(word_cf: str) -> tuple[str, ...]:
    """Stems of one casefolded surface word (stopwords dropped), cached per process."""
    global _TOKENIZER
    cached = _STEM_CACHE.get(word_cf)
    if cached is None:
        if _TOKENIZER is None:  # created lazily: one per worker process, never pickled
            _TOKENIZER = Tokenizer()
        cached = tuple(_TOKENIZER.terms(word_cf))
        if len(_STEM_CACHE) >= _STEM_CACHE_LIMIT:
            _STEM_CACHE.clear()
        _STEM_CACHE[word_cf] = cached
    return cached


def _split_speaker(text: str) -> tuple[str | None, str]:
    """("Caroline", "I went ...") for "Caroline: I went ..."; (None, text) when there is no prefix."""
    match = _SPEAKER.match(text)
    if match:
        name = match.group(1).rstrip(".")
        folded = name.casefold()
        parts = name.split()
        # Every word capitalised ("Mary Ann:"), so "The plan is simple: ..." is not a speaker.
        named = all(p[:1].isupper() for p in parts) and parts[0].casefold() not in STOPWORDS
        if (named or folded in _ROLES) and folded not in _NOT_SPEAKERS:
            return name, text[match.end():]
    return None, text


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` chars, at a word boundary when one is near, marked with "…"."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space > limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:-") + "…"


def _split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; abbreviations ("Dr.", "Mt.") and initials ("J.") do not end one."""
    out, start = [], 0
    for match in _BOUNDARY.finditer(text):
        if match.group() != "\n" and match.group().startswith("."):
            before = _WORD_BEFORE.search(text, 0, match.start())
            word = before.group(1).casefold().rstrip(".") if before else ""
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
        piece = text[start: match.end()].strip()
        if piece:
            out.append(piece)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def _sentences(turns: Iterable[TurnView]) -> tuple[list[_Sentence], list[str | None]]:
    """All sentences of the page in order, and each turn's speaker."""
    sentences: list[_Sentence] = []
    speakers: list[str | None] = []
    for index, turn in enumerate(turns):
        text = turn.text if isinstance(turn.text, str) else ""
        speaker, body = _split_speaker(text[:MAX_TURN_CHARS])
        speakers.append(speaker)
        asides = [_aside_text(m.group(1)) for m in _ASIDE.finditer(body)]
        body = _ASIDE.sub(" ", body) if asides else body
        pieces = [(p, False) for p in _split_sentences(body)] + [(a, True) for a in asides if a]
        for piece, aside in pieces:
            sentences.append(_Sentence(len(sentences), index, turn.id, speaker, _cut(piece, SENTENCE_CHARS), aside))
    return sentences, speakers


def _aside_text(aside: str) -> str:
    """A bracketed aside without its label: "shared image: a photo of a cat" -> "a photo of a cat"."""
    aside = aside.strip()
    label = _ASIDE_LABEL.match(aside)
    return aside[label.end():] if label else aside


def _analyse(sentence: _Sentence, speaker_words: frozenset[str]) -> None:
    """Fill in the words, content stems, counts and flags of ``sentence``."""
    for match in _SURFACE.finditer(sentence.text):
        surface = match.group().replace("’", "'")
        folded = surface.casefold()
        sentence.words.append((surface, folded, match.start(), match.end()))
        if folded in _FIRST_PERSON:
            sentence.person = True
        elif folded in _COUNT_WORDS or _DIGITS.search(folded):
            sentence.number = True
        if folded in _FILLERS or folded in speaker_words:
            continue
        stems = _stems(folded)
        if stems:
            sentence.content += 1
            sentence.stems.extend(stems)
            if folded not in _GENERIC:
                sentence.topic.extend(stems)


# --------------------------------------------------------------------------- proper nouns


def _is_name_token(surface: str, folded: str) -> bool:
    """Could this word be part of a proper noun? (capitalised, not a function/filler/calendar word)"""
    if not surface[:1].isupper():
        return False
    if folded.endswith("'s"):
        folded = folded[:-2]
    if len(folded) < 2 or folded in STOPWORDS or folded in _FILLERS or folded in _GENERIC:
        return False
    if folded in _FIRST_PERSON or folded in _CALENDAR or surface in _ACRONYM_FILLERS:
        return False
    # Long all-caps words are shouting ("INTENSE"), not acronyms.
    return not (surface.isupper() and len(surface) > 5) and not _DIGITS.search(surface)


def _is_acronym(surface: str) -> bool:
    return len(surface) >= 2 and surface.isupper() and surface.isalpha()


def _is_initial(surface: str) -> bool:
    return len(surface) == 1 and surface.isupper()


def _name_runs(sentence: _Sentence) -> list[tuple[str, int, int, bool]]:
    """Runs of adjacent capitalised words: (name, start, end, at_sentence_start)."""
    runs: list[tuple[str, int, int, bool]] = []
    words, text = sentence.words, sentence.text
    i = 0
    while i < len(words):
        if not (_is_name_token(words[i][0], words[i][1]) or _is_initial(words[i][0])):
            i += 1
            continue
        j = i + 1
        while j < len(words):
            link = _linked(words, j, text)
            if link is None:
                break
            j = link + 1
        end = j
        while end > i and _is_initial(words[end - 1][0]):  # "Plan B" -> "Plan"; a lone "B" is nothing
            end -= 1
        if end > i:
            first, last = words[i][2], words[end - 1][3]
            name = text[first:last]
            if name.endswith(("'s", "’s")):
                name = name[:-2]
            runs.append((name, first, last, i == 0))
        i = j
    return runs


def _linked(words: list[tuple[str, str, int, int]], j: int, text: str) -> int | None:
    """Index of the word continuing a name run at ``words[j]``, or None where the run ends.

    Only one plain space joins words ("Mount Everest", not "Paris, France"),
    or ". " after an initial ("George R. R. Martin"); "of"/"of the" may link
    two parts ("Lord of the Rings", "Bank of America").
    """
    k = j
    if words[k][0] == "of" and k + 1 < len(words):
        k += 1
        if words[k][0] == "the" and k + 1 < len(words):
            k += 1
    for a, b in zip(words[j - 1: k + 1], words[j: k + 1]):
        gap = text[a[3]: b[2]]
        if gap != " " and not (gap == ". " and _is_initial(a[0])):
            return None
    if _is_name_token(words[k][0], words[k][1]) or (k == j and _is_initial(words[k][0])):
        return k
    return None


def _is_vocative(sentence: _Sentence, start: int, end: int) -> bool:
    """ "Wow, Caroline!" or "Thanks, Mel." addresses someone rather than saying something about them."""
    after = sentence.text[end:].lstrip()
    if after and after[0] not in ",.!?;:…":
        return False
    before = sentence.text[:start].rstrip()
    if not before or before.endswith(","):
        return True
    previous = _SURFACE.findall(before)
    return bool(previous) and previous[-1].casefold() in _FILLERS


@dataclass(slots=True)
class _Names:
    """Proper nouns found in the page."""

    first_seen: dict[str, str] = field(default_factory=dict)  # casefold -> surface first seen
    turns: dict[str, set[int]] = field(default_factory=dict)  # casefold -> turn ids
    order: dict[str, int] = field(default_factory=dict)  # casefold -> first position
    salient: set[int] = field(default_factory=set)  # sentence orders naming a non-speaker, non-vocative

    def add(self, name: str, turn_id: int) -> None:
        key = name.casefold()
        if key not in self.first_seen:
            self.first_seen[key] = name
            self.order[key] = len(self.order)
            self.turns[key] = set()
        self.turns[key].add(turn_id)


def _find_names(sentences: list[_Sentence], turns: tuple[TurnView, ...], speakers: list[str | None],
                speaker_words: frozenset[str]) -> _Names:
    """Speakers plus proper nouns; a word at sentence start counts only if it is known otherwise."""
    names = _Names()
    for turn, speaker in zip(turns, speakers):
        if speaker:
            names.add(speaker, turn.id)
    runs = [_name_runs(s) for s in sentences]
    # Capitalised words seen mid-sentence (or speakers) vouch for the same word at a sentence start.
    known = {w.casefold() for s_runs in runs for run, _, _, initial in s_runs if not initial for w in run.split()}
    known |= speaker_words
    for sentence, s_runs in zip(sentences, runs):
        for name, start, end, initial in s_runs:
            if initial:
                first, _, rest = name.partition(" ")
                if first.casefold() not in known and not _is_acronym(first) and not _is_initial(first.rstrip(".")):
                    while rest.startswith(("of ", "the ")):  # "Lord of the Rings" -> "Rings", not "of the Rings"
                        rest = rest.partition(" ")[2]
                    if not rest:
                        continue
                    name, start = rest, start + len(name) - len(rest)
            names.add(name, sentence.turn_id)
            if name.casefold() not in speaker_words and not _is_vocative(sentence, start, end):
                names.salient.add(sentence.order)
    return names


def _entities(names: _Names) -> tuple[EntityMention, ...]:
    """The most mentioned names (at most MAX_ENTITIES), sorted by name."""
    keys = sorted(names.first_seen, key=lambda k: (-len(names.turns[k]), names.order[k]))[:MAX_ENTITIES]
    keys.sort(key=lambda k: (k, names.first_seen[k]))
    return tuple(EntityMention(names.first_seen[k], tuple(sorted(names.turns[k]))) for k in keys)


# --------------------------------------------------------------------------- dates


@dataclass(frozen=True, slots=True)
class _When:
    """A date a sentence refers to: the first day of the period and how long the period is."""

    date: dt.date
    granularity: str  # "day", "weekend", "week", "month" or "year"
    phrase: str
    relative: bool


def _session_date(event_time: float | None) -> dt.date | None:
    if event_time is None or not isinstance(event_time, (int, float)) or not math.isfinite(event_time):
        return None
    try:
        return dt.datetime.fromtimestamp(event_time, dt.timezone.utc).date()
    except (OverflowError, OSError, ValueError):
        return None


def _shift_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by whole months, the day clamped to the target month's length."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    for dom in (day.day, 30, 29, 28):  # 31 March - 1 month -> 28/29 February
        try:
            return dt.date(year, month, min(day.day, dom))
        except ValueError:
            continue
    raise ValueError(f"year {year} out of range")


def _count(text: str) -> int:
    """ "3", "two", "a couple of" -> 3, 2, 2."""
    text = text.casefold()
    if text.isdigit():
        return int(text)
    for word in text.split():
        if word in _NUMBER_WORDS and word not in ("a", "an", "of"):
            return _NUMBER_WORDS[word]
    return _NUMBER_WORDS.get(text, 1)


def _relative(match: re.Match, base: dt.date) -> tuple[dt.date, str]:
    """Resolve a :data:`_RELATIVE` match against the session date ``base``."""
    if match.group("day"):
        phrase = " ".join(match.group("day").casefold().split())
        offsets = {"yesterday": -1, "last night": -1, "tomorrow": 1,
                   "the day before yesterday": -2, "the day after tomorrow": 2}
        return base + dt.timedelta(days=offsets.get(phrase, 0)), "day"
    if match.group("n") or match.group("n2"):
        n = _count(match.group("n") or match.group("n2"))
        unit = (match.group("unit") or match.group("unit2")).casefold()
        sign = -1 if (match.group("ago") or "").casefold() == "ago" else 1
        n *= sign
        if unit == "day":
            return base + dt.timedelta(days=n), "day"
        if unit == "week":
            return base + dt.timedelta(weeks=n), "week"
        return _shift_months(base, n if unit == "month" else 12 * n), unit
    which = match.group("which").casefold()
    step = {"last": -1, "past": -1, "this": 0, "next": 1, "coming": 1}[which]
    period = match.group("period").casefold()
    monday = base - dt.timedelta(days=base.weekday())
    if period == "week":
        return monday + dt.timedelta(weeks=step), "week"
    if period == "weekend":  # the Saturday of that weekend
        return monday + dt.timedelta(days=5 + 7 * step), "weekend"
    if period == "month":
        return _shift_months(base.replace(day=1), step), "month"
    if period == "year":
        return dt.date(base.year + step, 1, 1), "year"
    target = _WEEKDAYS[period]
    if step < 0:  # the most recent one strictly before the session day
        delta = -((base.weekday() - target) % 7 or 7)
    elif step > 0:  # the first one strictly after
        delta = (target - base.weekday()) % 7 or 7
    else:  # this week's coming one (or today)
        delta = (target - base.weekday()) % 7
    return base + dt.timedelta(days=delta), "day"


def _explicit(match: re.Match, base: dt.date | None) -> tuple[dt.date, str] | None:
    """Resolve an :data:`_EXPLICIT` match; a missing year is the session's (None without one)."""
    g = match.groupdict()
    if g["iy"]:
        return dt.date(int(g["iy"]), int(g["im"]), int(g["id"])), "day"
    if g["y4"]:
        return dt.date(int(g["y4"]), 1, 1), "year"
    if g["m3"]:
        return dt.date(int(g["y3"]), _MONTHS[g["m3"].casefold()], 1), "month"
    if g["m4"]:
        if base is None:
            return None
        month = _MONTHS[g["m4"].casefold()]
        which = g["which"].casefold()
        year = base.year
        if which == "last" and month >= base.month:
            year -= 1
        elif which == "next" and month <= base.month:
            year += 1
        return dt.date(year, month, 1), "month"
    month_name, day, year = (g["m"], g["d"], g["y"]) if g["m"] else (g["m2"], g["d2"], g["y2"])
    if year is None:
        if base is None:
            return None
        year = base.year
    return dt.date(int(year), _MONTHS[month_name.casefold()], int(day)), "day"


def _may_hold_date(text: str) -> bool:
    """False only when neither date pattern can match: every match holds a digit or one of
    ``_DATE_WORDS`` as a whole word (most sentences hold neither, and the patterns are slow to run).
    Text beyond ASCII always goes to the patterns: their case-insensitive matching and ``casefold``
    disagree on a few letters (the dotted capital I)."""
    if not text.isascii() or _ANY_DIGIT.search(text) is not None:
        return True
    return not _DATE_WORDS.isdisjoint(_LETTERS.findall(text.lower()))


def _find_date(text: str, base: dt.date | None) -> _When | None:
    """The first date expression of ``text`` that resolves (earliest, then longest, match)."""
    if not _may_hold_date(text):
        return None
    candidates = []
    for pattern, relative in ((_RELATIVE, True), (_EXPLICIT, False)):
        for match in pattern.finditer(text):
            candidates.append((match.start(), -len(match.group()), relative, match))
    candidates.sort(key=lambda c: (c[0], c[1], c[2]))
    unresolved = None
    for _, _, relative, match in candidates:
        try:
            if relative:
                if base is None:  # no session date: keep the phrase, in case nothing resolves
                    unresolved = unresolved or _When(dt.date.min, "", _phrase(match.group(), True), True)
                    continue
                date, granularity = _relative(match, base)
            else:
                resolved = _explicit(match, base)
                if resolved is None:
                    continue
                date, granularity = resolved
        except (ValueError, OverflowError, KeyError):
            continue  # "31 February", a shift past year 9999
        return _When(date, granularity, _phrase(match.group(), relative), relative)
    return unresolved


def _phrase(text: str, relative: bool) -> str:
    """The date phrase as written, spaces normalised; "Last week" -> "last week" (not "June" -> "june")."""
    text = " ".join(text.split())
    return text[:1].lower() + text[1:] if relative and text[1:2].islower() else text


def _epoch(day: dt.date) -> float:
    """Midnight UTC of ``day`` in epoch seconds."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp()


# --------------------------------------------------------------------------- selection


_Candidate = tuple[float, _Sentence, _When | None]  # (score, sentence, its date)


def _fact_candidates(sentences: list[_Sentence], turns: tuple[TurnView, ...], names: _Names) -> list[_Candidate]:
    """(score, sentence, date) for every sentence worth keeping as a fact."""
    out = []
    for sentence in sentences:
        if sentence.aside or sentence.question or sentence.content < 3:
            continue
        base = _session_date(turns[sentence.turn].event_time)
        when = _find_date(sentence.text, base)
        number, person = sentence.number, sentence.person
        proper = sentence.order in names.salient
        strong = when is not None or number or proper
        # A dated/numbered/named sentence needs 3 content words ("my daughter turned 5"), others 4.
        if not (strong or person) or sentence.content < (3 if strong else 4):
            continue
        # Dates matter most (they answer "when" questions), then names, numbers, first person;
        # among equals, more topical words first.
        specific = len(set(sentence.topic))
        score = 3 * (when is not None) + 2 * proper + number + person + min(specific, 10) / 10
        out.append((score, sentence, when))
    return out


def _facts(sentences: list[_Sentence], turns: tuple[TurnView, ...], names: _Names) -> tuple[Fact, ...]:
    """The best sentences as facts: at most 2 per turn and 24 per page, in page order."""
    per_turn: dict[int, list[_Candidate]] = {}
    for candidate in _fact_candidates(sentences, turns, names):
        per_turn.setdefault(candidate[1].turn, []).append(candidate)
    kept = []
    for candidates in per_turn.values():
        candidates.sort(key=lambda c: (-c[0], c[1].order))
        kept.extend(candidates[:MAX_FACTS_PER_TURN])
    kept.sort(key=lambda c: (-c[0], c[1].order))
    kept = sorted(kept[:MAX_FACTS], key=lambda c: c[1].order)
    return tuple(_fact(sentence, when, turns[sentence.turn]) for _, sentence, when in kept)


def _fact(sentence: _Sentence, when: _When | None, turn: TurnView) -> Fact:
    """One Fact: the sentence with its speaker, dated by its own date phrase or the turn's time."""
    body = sentence.text.rstrip(" .!…")
    text = f"{sentence.speaker}: {body}" if sentence.speaker else body
    # The turn's own time, unless it is not a usable number (NaN would make the fact unequal to itself).
    event_time = turn.event_time if _session_date(turn.event_time) is not None else None
    meta: dict[str, str] = {}
    if when is not None:
        meta["relative" if when.relative else "explicit"] = when.phrase
        if when.granularity:  # resolved
            meta["date"] = when.date.isoformat()
            meta["granularity"] = when.granularity
            event_time = _epoch(when.date)
    return Fact(text=text, sources=(sentence.turn_id,), event_time=event_time, meta=meta)


def _summary(sentences: list[_Sentence]) -> str:
    """The 1-2 sentences sharing most vocabulary with the other turns, in page order."""
    body = [s for s in sentences if not s.aside]
    eligible = [s for s in body if not s.question and s.content >= 3] or [s for s in body if s.content] or body[:1]
    if not eligible:
        return ""
    turns_with: dict[str, set[int]] = {}
    for s in body:
        for stem in s.topic:
            turns_with.setdefault(stem, set()).add(s.turn)

    def centrality(s: _Sentence) -> float:
        terms = set(s.topic)
        if not terms:
            return 0.0
        # How many other turns share each term, normalised so long sentences do not win by length.
        return sum(len(turns_with[t]) - 1 for t in terms) / math.sqrt(len(terms))

    ranked = sorted(eligible, key=lambda s: (-centrality(s), s.order))
    chosen = ranked[:1]
    if len(ranked) > 1 and len(_join(ranked[:2])) <= SUMMARY_CHARS:
        chosen = ranked[:2]
    return _cut(_join(chosen), SUMMARY_CHARS)


def _join(sentences: list[_Sentence]) -> str:
    """Sentences in page order, the speaker written once per run of the same speaker."""
    parts: list[str] = []
    last_speaker: str | None = None
    for s in sorted(sentences, key=lambda s: s.order):
        if s.speaker and (s.speaker != last_speaker or not parts):
            parts.append(f"{s.speaker}: {s.text}")
        else:
            parts.append(s.text)
        last_speaker = s.speaker
    return " ".join(parts)


def _keywords(sentences: list[_Sentence], speaker_words: frozenset[str]) -> tuple[str, ...]:
    """Up to 8 terms by frequency × word-length rarity proxy (longer words are rarer), ties by first use.

    Words of asides (image captions) count half: they describe an attachment, not what was said.
    """
    counts: dict[str, float] = {}
    surfaces: dict[str, dict[str, int]] = {}  # stem -> surface form -> count
    for sentence in sentences:
        weight = 0.5 if sentence.aside else 1.0
        for position, (surface, folded, _, _) in enumerate(sentence.words):
            if (len(folded) < 3 or folded in speaker_words or folded in _FILLERS or folded in _GENERIC
                    or folded in _CALENDAR or folded in _FIRST_PERSON or _DIGITS.search(folded)):
                continue
            stems = _stems(folded)
            if len(stems) != 1:
                continue
            stem = stems[0]
            counts[stem] = counts.get(stem, 0.0) + weight
            # Sentence-initial capitals are not names: "Painting" counts as "painting".
            form = surface.lower() if position == 0 and not _is_acronym(surface) else surface
            forms = surfaces.setdefault(stem, {})
            forms[form] = forms.get(form, 0) + 1
    first = {stem: i for i, stem in enumerate(counts)}  # dicts keep first-insertion order
    ranked = sorted(counts, key=lambda t: (-counts[t] * math.log2(1 + len(t)), first[t]))[:MAX_KEYWORDS]
    # Most frequent surface form of each stem (first seen on ties).
    return tuple(max(surfaces[t].items(), key=lambda kv: kv[1])[0] for t in ranked)


# --------------------------------------------------------------------------- entry points


def consolidate_page(page: PageView) -> Consolidation:
    """Consolidate ``page`` extractively; never raises (a failure yields a minimal result).

    A module-level function so a ``ProcessPoolExecutor`` can run it directly.
    """
    turns = tuple(getattr(page, "turns", None) or ())
    try:
        return _consolidate(turns)
    except Exception:  # last line of defence: this policy is itself the fallback of the others
        first = next((t.text for t in turns if isinstance(getattr(t, "text", None), str) and t.text.strip()), "")
        return Consolidation(summary=_cut(first.strip(), SUMMARY_CHARS),
                             usage={"turns": len(turns), "facts": 0, "errors": 1})


def consolidate_pages(pages: Sequence[PageView]) -> list[Consolidation]:
    """:func:`consolidate_page` for each page, in order: a batch crosses to the policy process in one
    call instead of one per page."""
    return [consolidate_page(page) for page in pages]


def _consolidate(turns: tuple[TurnView, ...]) -> Consolidation:
    sentences, speakers = _sentences(turns)
    speaker_words = frozenset(p.casefold() for name in speakers if name for p in (name, *name.split()))
    for sentence in sentences:
        _analyse(sentence, speaker_words)
    names = _find_names(sentences, turns, speakers, speaker_words)
    facts = _facts(sentences, turns, names)
    return Consolidation(
        summary=_summary(sentences),
        keywords=_keywords(sentences, speaker_words),
        facts=facts,
        entities=_entities(names),
        usage={"turns": len(turns), "facts": len(facts)},
    )


class ExtractivePolicy:
    """The built-in consolidation policy: extractive, deterministic, offline.

    Stateless, so instances pickle by reference and can be shipped to worker
    processes; :meth:`consolidate` is :func:`consolidate_page`.
    """

    name = "extractive"
    version = "1"

    def consolidate(self, page: PageView) -> Consolidation:
        """Knowledge for ``page``: summary, keywords, facts and entities, all sourced from its turns."""
        return consolidate_page(page)

    def __repr__(self) -> str:
        return f"ExtractivePolicy(version={self.version!r})"
