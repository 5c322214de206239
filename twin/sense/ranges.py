"""A Datastream's physical range: the values its sensor can measure at all.

Stored as ``twin.sensor.value_min`` / ``value_max`` (either may be missing: no limit on that
side; both inclusive) and shown in SensorThings as ``properties.physicalRange`` ``{"min",
"max"}``. A reading outside it is a fault of the device, not data: the MQTT bridge keeps it in
the dead letters (reason :data:`OUT_OF_RANGE`), the HTTP API answers 400 naming the field and
the range (or an error item in the dataArray form).
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection

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
