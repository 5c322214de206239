"""A Datastream's physical range: the values its sensor can measure at all.

Stored as ``twin.sensor.value_min`` / ``value_max`` (either may be missing: no limit on that
side; both inclusive) and shown in SensorThings as ``properties.physicalRange`` ``{"min",
"max"}``. A reading outside it is a fault of the device, not data: the MQTT bridge keeps it in
the dead letters (reason :data:`OUT_OF_RANGE`), the HTTP API answers 400 naming the field and
the range (or an error item in the dataArray form).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import psycopg
from psycopg import AsyncConnection

from twin.access import audit
from twin.access.principal import Principal
from twin.errors import InvalidParameterError, NotFoundError

#: The dead-letter reasons of readings refused on their content (MQTT and HTTP alike).
OUT_OF_RANGE = "out of range"
UNKNOWN_DATASTREAM = "unknown datastream"
TOO_FAR_AHEAD = "phenomenonTime too far in the future"

PROPERTY = "physicalRange"  # the Datastream property holding {"min", "max"}


@dataclass(frozen=True)
class Limits:
    """The inclusive physical range of one datastream, in its unit (None: unbounded)."""

    low: float | None = None
    high: float | None = None

    def admits(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def text(self) -> str:
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "+inf" if self.high is None else f"{self.high:g}"
        return f"[{low}, {high}]"

    def refusal(self, value: float, where: str, datastream: int) -> str | None:
        """Why ``value`` is refused (naming ``where`` and the range), or None when it is fine."""
        if self.admits(value):
            return None
        return (f"{where}: {value:g} is outside the physical range {self.text()} of Datastream"
                f" {datastream} (properties.{PROPERTY})")  # fmt: skip


async def limits_of(conn: AsyncConnection, ids: set[int] | list[int]) -> dict[int, Limits]:
    """The limits of those of ``ids`` that are datastreams (an id missing: no such datastream)."""
    cur = await conn.execute(
        "SELECT id, value_min, value_max FROM twin.sensor WHERE id = ANY(%(i)s)", {"i": list(ids)}
    )
    return {r[0]: Limits(r[1], r[2]) for r in await cur.fetchall()}


def set_range(
    conn: psycopg.Connection, datastream: int, limits: Limits, *, actor: str
) -> tuple[Limits, Limits]:
    """Set a Datastream's physical range (``Limits()``: clear it); the range before and after.

    Audited (``sense.datastream.range``, as ``actor``) in the caller's transaction. The MQTT
    bridge sees the change within its limits cache time (30 s); the HTTP API at once.
    NotFoundError for an unknown datastream, InvalidParameterError (naming ``--min`` /
    ``--max``) for a bound that is not finite or a min above the max; nothing is changed."""
    for name, value in (("--min", limits.low), ("--max", limits.high)):
        if value is not None and not math.isfinite(value):
            raise InvalidParameterError(name, f"Datastream {datastream}: expected a finite number")
    if limits.low is not None and limits.high is not None and limits.low > limits.high:
        raise InvalidParameterError("--min", f"Datastream {datastream}: min {limits.low:g} is "
                                    f"above max {limits.high:g}")  # fmt: skip
    row = conn.execute("SELECT value_min, value_max FROM twin.sensor WHERE id = %s FOR UPDATE",
                       (datastream,)).fetchone()  # fmt: skip
    if row is None:
        raise NotFoundError(f"datastream: no Datastream with @iot.id {datastream}")
    before = Limits(row[0], row[1])
    conn.execute("UPDATE twin.sensor SET value_min = %s, value_max = %s WHERE id = %s",
                 (limits.low, limits.high, datastream))  # fmt: skip
    audit.record_sync(conn, Principal(name=actor, role="admin"), "sense.datastream.range",
                      f"datastream/{datastream}", detail={
                          PROPERTY: {"min": limits.low, "max": limits.high},
                          "before": {"min": before.low, "max": before.high}})  # fmt: skip
    return before, limits
