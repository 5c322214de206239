"""Tile cache: gzip-compressed tile bytes in an in-process LRU, and in Redis when configured.

Keys carry the layer's data version, so a write that bumps the version (in its own
transaction) makes every older entry unreachable: nothing is invalidated, nothing stale served.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

log = logging.getLogger(__name__)


class TileCache:
    """LRU bounded by total bytes; optional Redis second level (errors there are only logged)."""

    def __init__(
        self, max_bytes: int = 256 * 2**20, redis_url: str | None = None, ttl_s: int = 86_400
    ) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._lru: OrderedDict[str, bytes] = OrderedDict()
        self.ttl_s = ttl_s
        self.redis: Any = None
        if redis_url:
            import redis.asyncio as aioredis

            self.redis = aioredis.from_url(
                redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
        self.hits = 0
        self.misses = 0

    async def get(self, key: str) -> bytes | None:
        data = self._lru.get(key)
        if data is not None:
            self._lru.move_to_end(key)
            self.hits += 1
            return data
        if self.redis is not None:
            try:
                data = await self.redis.get(f"twin:tile:{key}")
            except Exception as exc:  # a cache must never break the request
                log.warning("redis get failed: %r", exc)
                data = None
            if data is not None:
                self._put_local(key, data)
                self.hits += 1
                return bytes(data)
        self.misses += 1
        return None

    async def put(self, key: str, data: bytes) -> None:
        self._put_local(key, data)
        if self.redis is not None:
            try:
                await self.redis.set(f"twin:tile:{key}", data, ex=self.ttl_s)
            except Exception as exc:
                log.warning("redis set failed: %r", exc)

    def _put_local(self, key: str, data: bytes) -> None:
        old = self._lru.pop(key, None)
        if old is not None:
            self.size -= len(old)
        self._lru[key] = data
        self.size += len(data)
        while self.size > self.max_bytes and self._lru:
            _, dropped = self._lru.popitem(last=False)
            self.size -= len(dropped)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
