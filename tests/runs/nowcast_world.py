"""Rain gauges and their readings put straight into a twin, for the nowcast loop's tests."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
from pyproj import Transformer


def rain(url: str, prefix: str, t0: datetime, mm_h: float, minutes: range) -> list[str]:
    """Two rain gauges (codes ``<prefix>-NW``, ``<prefix>-SE``) on the DEM reading ``mm_h``
    every minute of ``minutes`` around ``t0``; returns their codes."""
    with psycopg.connect(url) as conn:
        crs, (a, _, c0, _, e, f0), w, h = conn.execute(
            "SELECT crs, transform, width, height FROM twin.raster_asset WHERE kind = 'dem'"
        ).fetchone()  # type: ignore[misc]
        to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        codes = []
        for name, fx, fy in (("NW", 0.25, 0.25), ("SE", 0.75, 0.75)):
            lon, lat = to_lonlat.transform(c0 + a * w * fx, f0 + e * h * fy)
            code = f"{prefix}-{name}"
            (sid,) = conn.execute(
                "INSERT INTO twin.sensor (code, kind, unit, geom) VALUES"
                " (%s, 'rain_gauge', 'mm/h', ST_SetSRID(ST_MakePoint(%s, %s), 4326))"
                " RETURNING id",
                (code, lon, lat),
            ).fetchone()  # type: ignore[misc]
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO twin.observation (sensor_id, observed_at, value)"
                    " VALUES (%s, %s, %s)",
                    [(sid, t0 + timedelta(minutes=m), mm_h) for m in minutes],
                )
            codes.append(code)
    return codes


def after_the_latest_step(url: str, t: datetime) -> datetime:
    """``t``, or a day after the latest nowcast step already in the twin when that is later:
    the loop refuses a step at or before the latest one, and the tests share one demo twin."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT max(as_of) FROM twin.nowcast_step").fetchone()
    latest = row[0] if row else None
    if latest is None or latest < t:
        return t
    return (latest + timedelta(days=1)).replace(hour=t.hour, minute=t.minute, second=0,
                                                 microsecond=0)  # fmt: skip
