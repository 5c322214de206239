"""Answers computed once and shared: the city cockpit for every caller who would get the same.

A city-level cockpit reads a dozen figures over the whole city (0.3-0.4 s on the 12 M-resident
city), and eight dashboards asking at once would queue behind each other on one API worker.
An answer here is shared by callers with the same key (the request and everything that decides
what the caller may see: role, scope, clearance) for ``ttl_s`` seconds, and concurrent misses
for one key wait for a single computation. Writes made through the API clear everything
(:meth:`AnswerCache.clear`); writes made elsewhere (the alert watch, the CLI) show within
``ttl_s``. The answer says which instant it describes (the cockpit's ``as_of``), so an answer
served from here is exact about when it was true.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any


class AnswerCache:
    """Time-limited answers by key, computed once per key however many ask at once.

    Parameters
    ----------
    ttl_s
        How long an answer is served (s); 0 turns the cache off (every call computes).
    max_entries
        Entries kept (least recently used dropped first).
    """

    def __init__(self, ttl_s: float, *, max_entries: int = 512) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.generation = 0
        self._done: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._pending: dict[Hashable, tuple[int, asyncio.Future[Any]]] = {}
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Forget every answer, and keep those being computed now from being stored (they
        may have read the data before the write that called this)."""
        self.generation += 1
        self._done.clear()
        self._pending.clear()

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
        """The answer for ``key`` and its age (s), computing it with ``compute`` when there is
        none younger than ``ttl_s``. The computation runs in its own task: a caller that goes
        away (a closed connection) does not cancel it for the others. An error is raised to
        every caller waiting for it and not kept."""
        if self.ttl_s <= 0:
            return await compute(), 0.0
        now = time.monotonic()
        done = self._done.get(key)
        if done is not None and now - done[0] < self.ttl_s:
            self._done.move_to_end(key)
            self.hits += 1
            return done[1], now - done[0]
        pending = self._pending.get(key)
        if pending is None or pending[0] != self.generation:
            self.misses += 1
            fut = asyncio.ensure_future(self._compute(key, compute, self.generation))
            fut.add_done_callback(_retrieve)  # an error nobody waits for any more logs nothing
            self._pending[key] = pending = (self.generation, fut)
        else:
            self.hits += 1
        value, at = await asyncio.shield(pending[1])
        return value, time.monotonic() - at

    async def _compute(
        self, key: Hashable, compute: Callable[[], Awaitable[Any]], generation: int
    ) -> tuple[Any, float]:
        at = time.monotonic()  # the answer is at least as new as this
        try:
            value = await compute()
        finally:
            if self._pending.get(key, (None,))[0] == generation:
                del self._pending[key]
        if generation == self.generation:
            self._done[key] = (at, value)
            self._done.move_to_end(key)
            while len(self._done) > self.max_entries:
                self._done.popitem(last=False)
        return value, at


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
