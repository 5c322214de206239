"""The shared-answer cache: one computation however many ask at once, nothing stored that a
write cleared while it ran, errors not kept, and a caller that goes away cancels nothing."""

from __future__ import annotations

import asyncio

import pytest

from twin.reporting.answers import AnswerCache


def test_concurrent_misses_compute_once_and_hits_follow() -> None:
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return calls

    async def main() -> None:
        cache = AnswerCache(60)
        got = await asyncio.gather(*(cache.get("k", compute) for _ in range(8)))
        assert [v for v, _ in got] == [1] * 8 and calls == 1
        assert (await cache.get("k", compute))[0] == 1 and calls == 1
        assert (await cache.get("other", compute))[0] == 2

    asyncio.run(main())


def test_a_clear_during_the_computation_keeps_its_answer_out() -> None:
    async def main() -> None:
        cache = AnswerCache(60)
        gate = asyncio.Event()
        n = 0

        async def compute() -> int:
            nonlocal n
            n += 1
            mine = n
            await gate.wait()
            return mine

        first = asyncio.create_task(cache.get("k", compute))
        await asyncio.sleep(0.01)
        cache.clear()  # a write committed while the first computation read
        second = asyncio.create_task(cache.get("k", compute))  # must not join the first
        await asyncio.sleep(0.01)
        gate.set()
        assert (await first)[0] == 1 and (await second)[0] == 2
        assert (await cache.get("k", compute))[0] == 2  # the second one is kept

    asyncio.run(main())


def test_errors_reach_every_waiter_and_are_not_kept() -> None:
    async def main() -> None:
        cache = AnswerCache(60)
        tries = 0

        async def compute() -> int:
            nonlocal tries
            tries += 1
            await asyncio.sleep(0.01)
            if tries == 1:
                raise ValueError("bad area")
            return 7

        got = await asyncio.gather(*(cache.get("k", compute) for _ in range(3)),
                                   return_exceptions=True)  # fmt: skip
        assert all(isinstance(g, ValueError) for g in got) and tries == 1
        assert (await cache.get("k", compute))[0] == 7

    asyncio.run(main())


def test_a_caller_that_goes_away_cancels_nothing_for_the_others() -> None:
    async def main() -> None:
        cache = AnswerCache(60)

        async def compute() -> str:
            await asyncio.sleep(0.05)
            return "done"

        leaving = asyncio.create_task(cache.get("k", compute))
        staying = asyncio.create_task(cache.get("k", compute))
        await asyncio.sleep(0.01)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        assert (await staying)[0] == "done"

    asyncio.run(main())


def test_ttl_zero_is_off() -> None:
    async def main() -> None:
        cache = AnswerCache(0)
        n = 0

        async def compute() -> int:
            nonlocal n
            n += 1
            return n

        assert [(await cache.get("k", compute))[0] for _ in range(3)] == [1, 2, 3]

    asyncio.run(main())
