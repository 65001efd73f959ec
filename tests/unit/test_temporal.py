"""Time expressions and question intents, case by case from the grammar of English dates.

The reference time of every case is Wednesday 15 March 2023, 14:00 UTC, so that each relative
expression has one right answer that can be worked out by hand with a calendar.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from memosd.temporal import find_mentions, month_bits, resolved_hull, time_intent

REF = datetime(2023, 3, 15, 14, 0, tzinfo=timezone.utc).timestamp()  # a Wednesday


def day(y: int, m: int, d: int) -> float:
    return datetime(y, m, d, tzinfo=timezone.utc).timestamp()


def only(text: str, ref: float | None = REF):
    mentions = find_mentions(text, ref)
    assert len(mentions) == 1, [m.words for m in mentions]
    return mentions[0]


def span_of(text: str, ref: float | None = REF) -> tuple[date, date]:
    m = only(text, ref)
    assert m.lo is not None and m.hi is not None, text
    as_date = lambda t: datetime.fromtimestamp(t, timezone.utc).date()  # noqa: E731
    return as_date(m.lo), as_date(m.hi)


@pytest.mark.parametrize("text, lo, hi", [
    # deictic days
    ("I went there today", date(2023, 3, 15), date(2023, 3, 16)),
    ("we talked tonight", date(2023, 3, 15), date(2023, 3, 16)),
    ("I went there yesterday", date(2023, 3, 14), date(2023, 3, 15)),
    ("it rained last night", date(2023, 3, 14), date(2023, 3, 15)),
    ("see you tomorrow!", date(2023, 3, 16), date(2023, 3, 17)),
    ("the day before yesterday was fun", date(2023, 3, 13), date(2023, 3, 14)),
    ("the day after tomorrow we leave", date(2023, 3, 17), date(2023, 3, 18)),
    # counted units back and forth
    ("I moved three days ago", date(2023, 3, 12), date(2023, 3, 13)),
    ("two weeks ago we met", date(2023, 2, 26), date(2023, 3, 5)),  # the week centred on 1 March
    ("a couple of days ago", date(2023, 3, 13), date(2023, 3, 14)),
    ("in 2 days we go", date(2023, 3, 17), date(2023, 3, 18)),
    # weekdays (full and abbreviated) relative to a Wednesday
    ("last Friday I baked", date(2023, 3, 10), date(2023, 3, 11)),
    ("last Fri I baked", date(2023, 3, 10), date(2023, 3, 11)),
    ("I joined last Tues", date(2023, 3, 14), date(2023, 3, 15)),
    ("next Monday is the game", date(2023, 3, 20), date(2023, 3, 21)),
    ("on Saturday we hiked", date(2023, 3, 11), date(2023, 3, 12)),
    # calendar units with a modifier (weeks start on Monday)
    ("last week was busy", date(2023, 3, 6), date(2023, 3, 13)),
    ("this week is calm", date(2023, 3, 13), date(2023, 3, 20)),
    ("next week we travel", date(2023, 3, 20), date(2023, 3, 27)),
    ("last weekend we hiked", date(2023, 3, 11), date(2023, 3, 13)),
    ("last month I started", date(2023, 2, 1), date(2023, 3, 1)),
    ("next month I start", date(2023, 4, 1), date(2023, 5, 1)),
    ("last year I started", date(2022, 1, 1), date(2023, 1, 1)),
    ("last summer we swam", date(2022, 6, 1), date(2022, 9, 1)),
    ("this winter was cold", date(2022, 12, 1), date(2023, 3, 1)),  # the nearer one: just past
    ("this summer we swim", date(2023, 6, 1), date(2023, 9, 1)),  # the nearer one: to come
    ("next summer we swim", date(2023, 6, 1), date(2023, 9, 1)),
    # calendar dates, with and without the year
    ("on 8 May, 2022 we met", date(2022, 5, 8), date(2022, 5, 9)),
    ("May 8th, 2022", date(2022, 5, 8), date(2022, 5, 9)),
    ("the 4th of July 2021", date(2021, 7, 4), date(2021, 7, 5)),
    ("2022-05-08 was the date", date(2022, 5, 8), date(2022, 5, 9)),
    ("on 5/8/2022 it began", date(2022, 5, 8), date(2022, 5, 9)),
    ("back in June 2021", date(2021, 6, 1), date(2021, 7, 1)),
    ("in January we skied", date(2023, 1, 1), date(2023, 2, 1)),
    ("in November we ran", date(2022, 11, 1), date(2022, 12, 1)),  # a month ahead of the date is past
    ("I met him in 2019", date(2019, 1, 1), date(2020, 1, 1)),
    ("the summer of 2020", date(2020, 6, 1), date(2020, 9, 1)),
])
def test_relative_and_calendar_expressions_resolve_against_the_date_of_the_text(text, lo, hi):
    assert span_of(text) == (lo, hi)


@pytest.mark.parametrize("text, lo", [
    ("I've played for 4 years", date(2019, 3, 15)),
    ("Seven years now, and I still paint", date(2016, 3, 15)),
    ("since 2016 I paint", date(2016, 1, 1)),
    ("since May I run", date(2022, 5, 1)),
])
def test_spans_reach_back_from_the_date_of_the_text(text, lo):
    m = only(text)
    assert m.kind == "span"
    assert m.lo == pytest.approx(day(lo.year, lo.month, lo.day), abs=86400)  # years of 365.25 days
    assert m.hi == pytest.approx(REF, abs=86400)


@pytest.mark.parametrize("text", ["I did it recently", "the other day we talked", "a while ago",
                                  "I'll be there soon", "these days I rest"])
def test_vague_references_are_found_but_not_resolved(text):
    m = only(text)
    assert m.kind == "vague" and m.lo is None and m.hi is None


@pytest.mark.parametrize("text", ["", "I have 2 cats and a dog", "She may come", "I sat down",
                                  "We saw the sun rise", "page 12 of 300", "Call 555 1234"])
def test_text_without_a_time_expression_has_no_mention(text):
    assert find_mentions(text, REF) == []


def test_one_date_is_one_mention_and_mentions_come_in_order():
    mentions = find_mentions("On 8 May 2022 we met; yesterday we met again; in 2019 we did not.", REF)
    assert [m.words for m in mentions] == ["8 may 2022", "yesterday", "in 2019"]
    assert resolved_hull(mentions) == (day(2019, 1, 1), day(2023, 3, 15))


def test_without_a_date_only_absolute_expressions_resolve():
    assert span_of("in June 2021", None) == (date(2021, 6, 1), date(2021, 7, 1))
    assert only("yesterday", None).lo is None
    month = only("in June", None)
    assert month.lo is None and month.month_only == 6


def test_case_does_not_matter():
    assert span_of("LAST FRIDAY") == span_of("last friday")


@pytest.mark.parametrize("question", [
    "When did Alice move to Lisbon?", "How long has Bob played guitar?", "Since when does she paint?",
    "What year did they marry?", "In what month was the party?", "How many years has he worked there?",
    "Which day is the game?", "How often does she run?",
])
def test_questions_that_ask_for_a_time(question):
    intent = time_intent(question)
    assert intent.asks_time and intent.any


@pytest.mark.parametrize("question", ["What does Alice do?", "Where did Bob go on holiday?",
                                      "Who is her best friend?", "Why did she start painting?"])
def test_questions_that_do_not_ask_about_time(question):
    assert not time_intent(question).any


def test_a_question_that_names_a_period():
    intent = time_intent("What did Alice paint in June 2023?")
    assert not intent.asks_time
    assert intent.interval == (day(2023, 6, 1), day(2023, 7, 1))
    assert time_intent("Where did Bob travel on 1 May, 2022?").interval == (day(2022, 5, 1), day(2022, 5, 2))
    named_month = time_intent("What did Alice paint in June?")
    assert named_month.interval is None and named_month.month == 6
    # A relative period in a question has nothing to resolve against.
    assert time_intent("What did Alice paint last year?").interval is None


def test_month_bits_mark_the_month_said_and_the_months_a_mention_starts_and_ends_in():
    assert month_bits(None, None, None) == 0
    assert month_bits(day(2023, 3, 15), None, None) == 1 << 2
    assert month_bits(float("nan"), day(2023, 5, 30), day(2023, 7, 1)) == (1 << 4) | (1 << 5)  # May to June
    assert month_bits(day(2023, 3, 15), day(2022, 12, 1), day(2023, 3, 1)) == (1 << 2) | (1 << 11) | (1 << 1)


@pytest.mark.parametrize("text", ["order zqab2026cd1234ef shipped", "build a1b2c3 of 9f2019e", "token zq1999abcdef0123",
                                  "zq12feb2026a0b1", "zq5dec9a1b2c3d4e"])
def test_digits_inside_a_word_of_letters_and_digits_are_no_date(text):
    # Ids and hashes hold digit runs like 2026 and letter runs like "dec" or "feb": read as a date, a
    # recall for such an id would name a period and favour every turn said in it over the one memory
    # that holds the id.
    assert find_mentions(text, REF) == []
    assert time_intent(text).interval is None
