"""Replaying recorded readings over MQTT (``twin sense replay FILE --speed N``), and the demo's
recorded storm (``twin sense storm-file``), so that a newcomer sees the live loop happen.

A replay file is a CSV with a header: ``datastream`` (the Datastream id), ``time`` (ISO 8601 with
a zone, or seconds from the start of the recording), ``value`` (the result, in the datastream's
unit). Rows need not be sorted. Each reading is published to
``v1.1/Datastreams(<id>)/Observations`` (QoS 1) when its turn comes: at ``(t - t0) / speed``
after the start. A replay compresses time, so each reading is stamped with the moment it is
published (its ``phenomenonTime``), not with its recorded time: the twin sees the storm happen
now, at ``speed`` times its pace, and the readings never lie in the future.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from twin.errors import InvalidParameterError
from twin.sense.bridge import client_for, parse_mqtt_url
from twin.sim.rain import chicago_storm

HEADER = ("datastream", "time", "value")


@dataclass(frozen=True)
class Recorded:
    """One recorded reading: its datastream, its offset from the recording's start (s), value."""

    datastream: int
    t_s: float
    value: float


def _offset(text: str) -> float | datetime:
    try:
        return float(text)
    except ValueError:
        pass
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError("a timestamp needs a zone (Z or +hh:mm)")
    return at


def read_replay(path: Path) -> list[Recorded]:
    """The readings of a replay CSV, sorted by time; ValueError naming the file, row and field."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [h for h in HEADER if h not in (reader.fieldnames or [])]
        if missing:
            raise InvalidParameterError(
                "FILE", f"{path}: the header needs columns {', '.join(HEADER)} (missing "
                f"{', '.join(missing)})",
            )  # fmt: skip
        raw: list[tuple[int, float | datetime, float]] = []
        for n, row in enumerate(reader, start=2):
            field = "datastream"
            try:
                ds = int(row["datastream"])
                field = "time"
                t = _offset(row["time"].strip())
                field = "value"
                value = float(row["value"])
                if not math.isfinite(value):
                    raise ValueError("not a finite number")
            except (ValueError, TypeError, AttributeError) as exc:
                raise InvalidParameterError(
                    "FILE", f"{path}, row {n}, field {field}: {exc}"
                ) from None
            raw.append((ds, t, value))
    if not raw:
        raise InvalidParameterError("FILE", f"{path}: no readings")
    kinds = {isinstance(t, datetime) for _, t, _ in raw}
    if len(kinds) > 1:
        raise InvalidParameterError("FILE", f"{path}: time mixes timestamps and seconds")
    if kinds == {True}:
        t0 = min(t for _, t, _ in raw if isinstance(t, datetime))
        out = [Recorded(d, (t - t0).total_seconds(), v) for d, t, v in raw
               if isinstance(t, datetime)]  # fmt: skip
    else:
        t0s = min(float(t) for _, t, _ in raw if not isinstance(t, datetime))
        out = [Recorded(d, float(t) - t0s, v) for d, t, v in raw if not isinstance(t, datetime)]
    return sorted(out, key=lambda r: (r.t_s, r.datastream))


def storm_file(
    path: Path,
    gauges: list[tuple[int, float]],
    levels: list[tuple[int, float]],
    *,
    return_period_years: float = 50.0,
    duration_min: float = 60.0,
    step_s: float = 60.0,
    seed: int = 1,
) -> int:
    """Write the demo's recorded storm: a Chicago design storm at each rain gauge and the water
    level it makes at each water-level sensor. Deterministic for a given ``seed``.

    Parameters
    ----------
    path
        The CSV to write (``datastream,time,value``; time in s from the start).
    gauges
        (datastream id, distance along the storm's path (m)) of each rain gauge: the storm
        reaches a gauge later the further along it lies (a front moving at 10 m/s).
    levels
        (datastream id, sensitivity) of each water-level sensor: metres of water per 100 mm of
        rain fallen in the last hour (a pocket that fills; 0.5-1 for low spots).
    return_period_years, duration_min
        The design storm (rain intensity in mm/h at its peak follows from them).
    step_s
        Time between two readings of a sensor (s).
    seed
        Seed of each gauge's scatter (+-15 % of the intensity).

    Returns
    -------
    int
        The number of readings written.
    """
    storm = chicago_storm(return_period_years=return_period_years, duration_min=duration_min)
    rng = np.random.default_rng([seed, 29])
    total_s = duration_min * 60.0 + 1800.0  # and half an hour after, while pockets drain
    times = np.arange(0.0, total_s + 1e-9, step_s)
    rows: list[tuple[int, float, float]] = []
    area_rain = np.zeros_like(times)
    for ds, along in gauges:
        lag = along / 10.0
        scale = 1.0 + rng.uniform(-0.15, 0.15)
        mm_h = np.array([storm.at(t - lag) if t >= lag else 0.0 for t in times]) * 3.6e6 * scale
        area_rain += mm_h / max(1, len(gauges))
        rows += [(ds, float(t), round(float(v), 2)) for t, v in zip(times, mm_h, strict=True)]
    # Rain of the last hour over the city (mm) at each time: what fills the pockets.
    fallen = np.array([area_rain[(times > t - 3600) & (times <= t)].sum() * step_s / 3600
                       for t in times])  # fmt: skip
    for ds, sensitivity in levels:
        depth = np.maximum(0.0, fallen / 100.0 * sensitivity)
        rows += [(ds, float(t), round(float(v), 3)) for t, v in zip(times, depth, strict=True)]
    rows.sort(key=lambda r: (r[1], r[0]))
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    return len(rows)


def payload(value: float, at: datetime) -> bytes:
    """The Observation JSON a replayed reading is published as."""
    stamp = at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"phenomenonTime": stamp, "result": value}).encode()


async def replay(
    readings: list[Recorded], mqtt_url: str, *, speed: float = 60.0, loop: bool = False
) -> int:
    """Publish ``readings`` at ``speed`` times their recorded pace; returns how many were sent.

    With ``loop`` the recording starts again after its end, for ever (the demo's storm)."""
    if speed <= 0:
        raise InvalidParameterError("speed", "must be positive")
    broker = parse_mqtt_url(mqtt_url)
    sent = 0
    async with client_for(broker, f"twin-replay-{time.monotonic_ns()}") as client:
        while True:
            start = time.monotonic()
            for r in readings:
                wait = start + r.t_s / speed - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                topic = f"v1.1/Datastreams({r.datastream})/Observations"
                await client.publish(topic, payload(r.value, datetime.now(UTC)), qos=1)
                sent += 1
            if not loop:
                return sent


DEMO_SENSORS_SQL = """
SELECT id, code, kind, ST_X(ST_Transform(geom, 3857)) AS x FROM twin.sensor
WHERE kind IN ('rain_gauge', 'water_level') ORDER BY id
"""


def demo_sensors(
    rows: list[tuple[int, str, str, float]], *, seed: int = 1
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """Rain gauges (id, distance along a west-to-east storm path (m)) and water-level sensors
    (id, sensitivity) from ``DEMO_SENSORS_SQL`` rows: low spots fill at 0.5-1.0 m per 100 mm,
    river gauges (codes ``WL-R*``) rise less (0.4: the river carries the water away)."""
    rng = np.random.default_rng([seed, 31])
    xs = [x for _, _, kind, x in rows if kind == "rain_gauge"]
    west = min(xs) if xs else 0.0
    gauges = [(i, float(x - west)) for i, _, kind, x in rows if kind == "rain_gauge"]
    levels = [(i, 0.4 if code.startswith("WL-R") else float(rng.uniform(0.5, 1.0)))
              for i, code, kind, _ in rows if kind == "water_level"]  # fmt: skip
    return gauges, levels
