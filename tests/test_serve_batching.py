"""GreedyBatcher: a lone item goes at once; items that arrive during a batch go in the next one."""

from __future__ import annotations

import asyncio
import threading

import pytest

from services.batching import GreedyBatcher


class Gate:
    """A batch function that records its batches and blocks until released (a slow model)."""

    def __init__(self, fail_on: object = None):
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail_on = fail_on

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.entered.set()
        self.release.wait(5)
        if self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [i * 10 for i in items]


def test_a_lone_item_is_processed_at_once_in_a_batch_of_one():
    async def main():
        gate = Gate()
        gate.release.set()
        b = GreedyBatcher(gate, max_batch_size=8)
        out = await asyncio.wait_for(b.submit(3), 2)
        return gate, out

    gate, out = asyncio.run(main())
    assert (out.result, out.batch_size) == (30, 1) and out.seconds >= 0
    assert gate.batches == [[3]]


def test_items_arriving_during_a_batch_go_together_in_the_next_one_up_to_the_maximum():
    async def main():
        gate = Gate()
        b = GreedyBatcher(gate, max_batch_size=3)
        first = asyncio.ensure_future(b.submit(0))
        await asyncio.to_thread(gate.entered.wait, 2)  # the model is busy with [0]
        rest = [asyncio.ensure_future(b.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0.05)  # all five are queued
        gate.release.set()
        return gate, await first, await asyncio.gather(*rest)

    gate, first, rest = asyncio.run(main())
    assert gate.batches == [[0], [1, 2, 3], [4, 5]]
    assert first.batch_size == 1
    assert [(r.result, r.batch_size) for r in rest] == [(10, 3), (20, 3), (30, 3), (40, 2), (50, 2)]


def test_wait_gathers_items_that_arrive_shortly_after_the_first():
    async def main():
        gate = Gate()
        gate.release.set()
        b = GreedyBatcher(gate, max_batch_size=8, wait_s=0.3)
        first = asyncio.ensure_future(b.submit(1))
        await asyncio.sleep(0.02)
        second = asyncio.ensure_future(b.submit(2))
        return gate, await first, await second

    gate, first, second = asyncio.run(main())
    assert gate.batches == [[1, 2]] and first.batch_size == second.batch_size == 2


def test_a_failing_batch_fails_only_its_own_items_and_the_batcher_goes_on():
    async def main():
        gate = Gate(fail_on=2)
        b = GreedyBatcher(gate, max_batch_size=2)
        first = asyncio.ensure_future(b.submit(1))
        await asyncio.to_thread(gate.entered.wait, 2)
        bad = [asyncio.ensure_future(b.submit(i)) for i in (2, 3)]
        await asyncio.sleep(0.05)
        gate.release.set()
        ok = await first
        errors = await asyncio.gather(*bad, return_exceptions=True)
        later = await b.submit(4)
        return ok, errors, later

    ok, errors, later = asyncio.run(main())
    assert ok.result == 10
    assert all(isinstance(e, ValueError) and "bad item 2" in str(e) for e in errors)
    assert (later.result, later.batch_size) == (40, 1)


def test_a_cancelled_caller_is_left_out_of_the_batch():
    async def main():
        gate = Gate()
        b = GreedyBatcher(gate, max_batch_size=8)
        first = asyncio.ensure_future(b.submit(0))
        await asyncio.to_thread(gate.entered.wait, 2)
        gone = asyncio.ensure_future(b.submit(1))
        kept = asyncio.ensure_future(b.submit(2))
        await asyncio.sleep(0.02)
        gone.cancel()
        gate.release.set()
        return gate, await first, await kept

    gate, _, kept = asyncio.run(main())
    assert gate.batches == [[0], [2]] and kept.result == 20


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_batch_size"):
        GreedyBatcher(lambda xs: xs, max_batch_size=0)
    with pytest.raises(ValueError, match="wait_s"):
        GreedyBatcher(lambda xs: xs, wait_s=-1)
