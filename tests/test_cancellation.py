"""A cancellation that arrives as the awaited item does must still end the task (the race
that Python 3.11's asyncio.wait_for loses, gh-86296): constructed deterministically, by
putting the item and cancelling the waiting task in the same loop turn."""

from __future__ import annotations

import asyncio
import sys

import pytest

from twin.cancellation import get_within, raise_if_cancelling


async def _race(waiter: object) -> tuple[asyncio.Task[object], asyncio.Queue[int]]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    task = asyncio.create_task(waiter(queue))  # type: ignore[operator]
    await asyncio.sleep(0.01)  # the task now waits on the queue
    queue.put_nowait(1)
    task.cancel()
    return task, queue


def test_get_within_keeps_a_racing_cancellation_and_the_item() -> None:
    async def main() -> None:
        task, queue = await _race(lambda q: get_within(q, 10.0))
        with pytest.raises(asyncio.CancelledError):
            await task
        assert queue.qsize() == 1  # the item it raced with is still there

    asyncio.run(main())


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12 built wait_for on timeout()")
def test_the_race_is_real_for_wait_for_on_this_python() -> None:
    """The construction above does hit the race: wait_for returns the item instead."""

    async def main() -> None:
        task, _ = await _race(lambda q: asyncio.wait_for(q.get(), 10.0))
        assert await task == 1 and task.cancelling() == 1

    asyncio.run(main())


def test_get_within_times_out_to_none() -> None:
    async def main() -> None:
        assert await get_within(asyncio.Queue(), 0.01) is None

    asyncio.run(main())


def test_a_loop_that_lost_its_cancellation_ends_at_its_next_check() -> None:
    async def loop(queue: asyncio.Queue[int]) -> int:
        n = 0
        while True:
            try:
                n += await asyncio.wait_for(queue.get(), 10.0)
            except TimeoutError:
                continue
            raise_if_cancelling()

    async def main() -> None:
        task, _ = await _race(loop)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5.0)

    asyncio.run(main())
