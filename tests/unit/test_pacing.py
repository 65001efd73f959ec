"""The scheduler's pacer: steps bounded in time, work sized by measured cost, rest under traffic."""

import asyncio
import time

from memosd.tiers.pacing import STEP_BUCKETS_S, Pacer


def test_work_is_sized_by_its_measured_cost_within_the_ceiling():
    pacer = Pacer(step_s=0.002, share=0.5, traffic=lambda: False)
    assert pacer.fits("doc", first_guess_s=0.0005, ceiling=64) == 4  # the guess until measured
    pacer.learn("doc", items=10, seconds=0.001)  # 100 us each
    assert pacer.fits("doc", 0.0005, 64) == 20
    assert pacer.fits("doc", 0.0005, 8) == 8
    pacer.learn("doc", items=1, seconds=0.1)  # one slow batch moves the estimate, not all the way
    assert 1 <= pacer.fits("doc", 0.0005, 64) < 20
    pacer.learn("slow", items=1, seconds=1.0)
    assert pacer.fits("slow", 0.0005, 64) == 1  # at least one item, however slow


def test_steps_end_at_their_deadline_and_are_counted_by_length():
    pacer = Pacer(step_s=0.001, share=1.0, traffic=lambda: False)
    step = pacer.begin()
    assert not step.over()
    while not step.over():
        pass
    assert time.perf_counter() - step.start >= 0.001
    for seconds in (0.0001, 0.0015, 0.03, 0.5):
        pacer.record(seconds, "test")
    assert pacer.steps == 4 and pacer.longest_s == 0.5
    histogram = dict(pacer.histogram())
    assert histogram[STEP_BUCKETS_S[0]] == 1 and histogram[0.002] == 1 and histogram[0.05] == 1
    assert histogram[None] == 1  # longer than every bound
    assert sum(histogram.values()) == pacer.steps


def test_under_traffic_the_scheduler_rests_in_proportion_to_its_step():
    async def one_step(traffic: bool) -> float:
        pacer = Pacer(step_s=0.01, share=0.25, traffic=lambda: traffic)
        step = pacer.begin()
        while not step.over():
            pass
        took = time.perf_counter() - step.start
        rested_from = time.perf_counter()
        await pacer.rest(step, "test")
        return (time.perf_counter() - rested_from) / took

    # With a quarter of the loop, a step of 10 ms is followed by at least 30 ms for requests.
    assert asyncio.run(one_step(True)) >= 2.9
    assert asyncio.run(one_step(False)) < 1.0
