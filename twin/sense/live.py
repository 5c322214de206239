"""An in-process publish/subscribe of new observations: writers (the STA API after commit, the
MQTT bridge) publish, the SSE stream (``/api/live``) and the bridge's MQTT fan-out subscribe.

Each subscriber has a bounded queue; a subscriber that falls behind loses its oldest items
rather than slowing writers down, and is told so (an item with ``"dropped"``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

QUEUE_SIZE = 10_000


class LiveHub:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self.published = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, items: list[dict[str, Any]]) -> None:
        """Hand ``items`` (observation JSON objects) to every subscriber; never blocks."""
        self.published += len(items)
        for queue in self._subscribers:
            for item in items:
                if queue.full():
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                    with contextlib.suppress(asyncio.QueueFull):
                        queue.put_nowait({"dropped": 1})
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(item)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, size: int = QUEUE_SIZE
    ) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
