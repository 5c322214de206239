"""Waits that a cancellation always ends.

Python 3.11's :func:`asyncio.wait_for` loses a cancellation that arrives in the same loop turn
as its inner future completes: it returns the result and the task runs on (gh-86296, fixed in
3.12 by building ``wait_for`` on :func:`asyncio.timeout`). A service loop that lost its
cancellation that way never ends, and whoever awaits it (a TaskGroup, a shutdown, a test)
hangs. The bridge's batching wait hit it under load. These helpers are the 3.12 behaviour on
3.11: use them, not ``wait_for``, in loops that must stop when cancelled.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


async def get_within(queue: asyncio.Queue[T], seconds: float) -> T | None:
    """The next item of ``queue``, or None once ``seconds`` (s) have passed without one.

    A cancellation always propagates, and the item it raced with stays in the queue
    (:meth:`asyncio.Queue.get` takes it only after its wait succeeded).
    """
    try:
        async with asyncio.timeout(seconds):
            return await queue.get()
    except TimeoutError:
        return None


def raise_if_cancelling() -> None:
    """Raise CancelledError if the current task has a cancellation pending.

    For loops that await third-party code which may use ``asyncio.wait_for`` internally (aiomqtt
    does for every publish and subscribe): a cancellation swallowed there still leaves the
    task's request count above zero, so the loop ends at its next check.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
