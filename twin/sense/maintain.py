"""Upkeep of the stored readings and of the partitioned tables, in the background of the API
process and of ``twin sense run``: every ``TWIN_SENSE_MAINTENANCE_INTERVAL_S`` the roll-ups are
refreshed (skipped while another process refreshes), and at start and then hourly the
partitions ahead are made: the days of ``twin.observation`` and the months of ``twin.event``,
``twin.task_transition`` and ``twin.audit_log`` (:mod:`twin.db.history`).

Detaching past the retention is not done here: it is ``twin sense partitions --detach`` and
``twin db partitions --detach``, run from cron (or by hand), so that a server never takes rows
away on its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from twin.db import history
from twin.sense import partitions, rollups
from twin.settings import Settings

log = logging.getLogger(__name__)

ENSURE_EVERY_S = 3600.0
REFRESH_LIMIT = 20_000  # queued hours per pass; the rest waits for the next one


class Maintainer:
    """One connection of its own (the database owner's, like the other local tools)."""

    def __init__(self, db_url: str, settings: Settings) -> None:
        self.db_url = db_url
        self.settings = settings
        self.conn: psycopg.Connection | None = None
        self.last_ensure = -float("inf")
        self.stats: dict[str, Any] = {"refreshes": 0, "hours": 0, "partitions_made": 0,
                                      "errors": 0, "last_error": None}  # fmt: skip

    def once(self, now: datetime) -> None:
        """One pass: the partitions ahead when due, then the roll-ups."""
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.db_url, autocommit=True,
                                        application_name="twin-sense-maintenance")  # fmt: skip
        row = self.conn.execute("SELECT to_regclass('twin_part.observation_default')").fetchone()
        if row is None or row[0] is None:  # a schema from before 0017: nothing to keep up
            return
        s = self.settings
        if time.monotonic() - self.last_ensure >= ENSURE_EVERY_S:
            made = partitions.ensure(self.conn, today=now.astimezone(UTC).date(),
                                     ahead_days=s.sense_partitions_ahead_days,
                                     retention_days=s.sense_retention_days)  # fmt: skip
            if history.installed(self.conn):
                months = history.ensure_all(
                    self.conn,
                    today=now.astimezone(UTC).date(),
                    ahead_months=s.history_partitions_ahead_months,
                )
                if months:
                    log.info("history partitions made: %s", ", ".join(months))
                self.stats["partitions_made"] += len(months)
            self.last_ensure = time.monotonic()
            if made:
                log.info("observation partitions made: %s", ", ".join(made))
            self.stats["partitions_made"] += len(made)
        got = rollups.refresh(self.conn, res=s.sense_rollup_resolution, limit=REFRESH_LIMIT,
                              wait=False)  # fmt: skip
        if got is not None:
            self.stats["refreshes"] += 1
            self.stats["hours"] += got.hours

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    async def run(self) -> None:
        """Until cancelled; a failed pass (database away, ...) is logged and retried."""
        interval = self.settings.sense_maintenance_interval_s
        try:
            while True:
                try:
                    await asyncio.to_thread(self.once, datetime.now(UTC))
                except (psycopg.Error, OSError) as exc:
                    self.stats["errors"] += 1
                    self.stats["last_error"] = str(exc)[:300]
                    log.warning("sense maintenance: %s", exc)
                    await asyncio.to_thread(self.close)
                await asyncio.sleep(interval)
        finally:
            await asyncio.to_thread(self.close)
