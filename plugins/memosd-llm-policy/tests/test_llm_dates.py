"""Resolution of the model's dates against a session date (pure functions; no server involved)."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from memosd_llm_policy.dates import resolve, to_epoch

MONDAY = datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("text, expected", [
    ("2023-05-01", (date(2023, 5, 1), "day")),
    ("2023-06", (date(2023, 6, 1), "month")),
    ("2022", (date(2022, 1, 1), "year")),
    ("today", (date(2023, 5, 8), "day")),
    ("Yesterday", (date(2023, 5, 7), "day")),
    ("last night", (date(2023, 5, 7), "day")),
    ("the day before yesterday", (date(2023, 5, 6), "day")),
    ("tomorrow", (date(2023, 5, 9), "day")),
    ("two days ago", (date(2023, 5, 6), "day")),
    ("3 weeks ago", (date(2023, 4, 17), "week")),
    ("a couple of days ago", (date(2023, 5, 6), "day")),
    ("last week", (date(2023, 5, 1), "week")),
    ("last weekend", (date(2023, 5, 6), "weekend")),
    ("next weekend", (date(2023, 5, 20), "weekend")),
    ("last month", (date(2023, 4, 1), "month")),
    ("a month ago", (date(2023, 4, 1), "month")),
    ("last year", (date(2022, 1, 1), "year")),
    ("next month", (date(2023, 6, 1), "month")),
    ("in 2 weeks", (date(2023, 5, 22), "week")),
    ("last Friday", (date(2023, 5, 5), "day")),
    ("last Monday", (date(2023, 5, 1), "day")),
    ("next Monday", (date(2023, 5, 15), "day")),
    ("this Wednesday", (date(2023, 5, 10), "day")),
])
def test_resolves(text, expected):
    assert resolve(text, MONDAY) == expected


@pytest.mark.parametrize("text", ["a few days ago", "recently", "2023-02-30", "1066", "sometime", ""])
def test_unresolvable(text):
    assert resolve(text, MONDAY) is None


def test_relative_needs_a_reference_absolute_does_not():
    assert resolve("yesterday", None) is None
    assert resolve("2023-05-07", None) == (date(2023, 5, 7), "day")


def test_to_epoch_is_midnight_utc():
    assert to_epoch(date(2023, 5, 7)) == datetime(2023, 5, 7, tzinfo=timezone.utc).timestamp()
