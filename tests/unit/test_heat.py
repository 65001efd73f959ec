"""Heat: the documented formula, its decay, and the eviction order it implies."""

from __future__ import annotations

import random

import pytest

from memosd.tiers.heat import eviction_key, heat, page_heat, touched

H = 3600.0


def test_heat_halves_every_half_life_and_a_hit_adds_one():
    start = float(heat(2.0, 1000.0, 8, 1000.0, H, 0.25))
    assert start == pytest.approx(2.0 + 0.25 * 2.1972246, rel=1e-6)
    assert float(heat(2.0, 1000.0, 8, 1000.0 + H, H, 0.25)) == pytest.approx(start / 2)
    assert float(heat(2.0, 1000.0, 8, 1000.0 + 3 * H, H, 0.25)) == pytest.approx(start / 8)
    # A hit one half-life later: the old hits count half, plus one.
    assert touched(2.0, 1000.0, 1000.0 + H, H) == pytest.approx(2.0)
    # A clock that steps back does not heat a page up.
    assert float(heat(2.0, 1000.0, 8, 500.0, H, 0.25)) == pytest.approx(start)


def test_ordering_by_eviction_key_is_ordering_by_heat_at_any_time():
    rng = random.Random(5)
    pages = [(rng.random() * 5, rng.uniform(0, 10 * H), rng.randint(1, 8)) for _ in range(200)]
    by_key = sorted(range(len(pages)), key=lambda i: eviction_key(*pages[i], H, 0.25))
    for now in (10 * H, 11.5 * H, 40 * H):
        values = [float(heat(*p, now, H, 0.25)) for p in pages]
        assert [values[i] for i in by_key] == sorted(values)


def test_one_page_in_plain_floats_is_the_formula_for_arrays():
    rng = random.Random(7)
    for _ in range(1000):
        hits, touched_at, size = rng.random() * 20, rng.uniform(0, 10 * H), rng.randint(1, 300)
        now = rng.uniform(0, 12 * H)  # sometimes before touched_at: a clock that stepped back
        # libm and numpy's vectorised exp2/log1p may differ in the last bit on some CPUs.
        assert page_heat(hits, touched_at, size, now, H, 0.25) == pytest.approx(
            float(heat(hits, touched_at, size, now, H, 0.25)), rel=1e-12)
