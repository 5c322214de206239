"""Indicators alert rules watch: named queries giving one value per subject.

Each indicator's SQL returns ``subject`` (text: a cell's hex id, a sensor code, 'city'),
``cell`` (BIGINT or NULL), ``patch`` (the admin area holding the subject: a grid patch, or the
city for city-wide values), ``value`` and ``run_id`` (the simulation behind it, or NULL). The
queries are constants here; rule files only choose among them and set bound parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twin.durations import parse_duration
from twin.risk.catalog import LEVELS


def _no_check(params: dict[str, Any]) -> dict[str, Any]:
    return params


def _check_res(params: dict[str, Any]) -> dict[str, Any]:
    res = params.get("res")
    if isinstance(res, bool) or not isinstance(res, int) or not 0 <= res <= 15:
        raise ValueError(f"res must be an H3 resolution 0..15, got {res!r}")
    return params


def _check_age(params: dict[str, Any]) -> dict[str, Any]:
    age = parse_duration(str(params.get("max_age")))
    return {**params, "max_age": f"{age.total_seconds():.0f} seconds"}


def _check_layer(params: dict[str, Any]) -> dict[str, Any]:
    _check_res(params)
    if not isinstance(params.get("layer"), str):
        raise ValueError(f"layer must be a layer id, got {params.get('layer')!r}")
    return params


HORIZONS = ("now", "+60")


def _check_nowcast(params: dict[str, Any]) -> dict[str, Any]:
    _check_res(params)
    if params.get("horizon") not in HORIZONS:
        raise ValueError(f"horizon must be one of {HORIZONS}, got {params.get('horizon')!r}")
    return _check_age(params)


@dataclass(frozen=True)
class Indicator:
    id: str
    title: str
    unit: str
    sql: str
    params: dict[str, Any] = field(default_factory=dict)  # defaults; rule files may override
    check_params: Callable[[dict[str, Any]], dict[str, Any]] = _no_check


_SENSOR_SQL = """
SELECT s.code AS subject, s.cell,
       (SELECT a.id FROM twin.admin_area a
        WHERE a.level = 'grid' AND ST_Intersects(a.geom, s.geom) LIMIT 1) AS patch,
       o.value, NULL::bigint AS run_id
FROM twin.sensor s
JOIN LATERAL (
    SELECT value FROM twin.observation
    WHERE sensor_id = s.id AND observed_at <= %(as_of)s
      AND observed_at > %(as_of)s - %(max_age)s::interval
    ORDER BY observed_at DESC LIMIT 1
) o ON true
WHERE s.kind = %(kind)s
"""

INDICATORS: dict[str, Indicator] = {
    i.id: i
    for i in (
        Indicator(
            "flood_depth_m", "Maximum flood depth in a cell, latest storm run", "m",
            """
            SELECT twin.h3_to_hex(f.cell) AS subject, f.cell, c.area_id AS patch,
                   f.max_depth_m AS value, f.run_id
            FROM twin.flood_cell_result f
            LEFT JOIN twin.cell_stats c ON c.res = f.res AND c.cell = f.cell
            WHERE f.run_id = %(flood_run)s AND f.res = %(res)s
            """,
            params={"res": 9}, check_params=_check_res,
        ),
        Indicator(
            "nowcast_depth_m",
            "Water depth in a cell, latest nowcast step: now, or at its horizon (+60 min)", "m",
            # The latest step at or before the evaluation, if no older than max_age (a nowcast
            # that stopped stepping raises nothing; its alerts resolve). Dry cells: no row.
            """
            WITH s AS (
                SELECT id FROM twin.nowcast_step
                WHERE as_of <= %(as_of)s AND as_of > %(as_of)s - %(max_age)s::interval
                ORDER BY as_of DESC, id DESC LIMIT 1
            )
            SELECT twin.h3_to_hex(n.cell) AS subject, n.cell, c.area_id AS patch,
                   CASE WHEN %(horizon)s = 'now' THEN n.depth_now_m ELSE n.depth_horizon_m END
                     AS value, NULL::bigint AS run_id
            FROM twin.nowcast_cell n JOIN s ON n.step_id = s.id
            LEFT JOIN twin.cell_stats c ON c.res = n.res AND c.cell = n.cell
            WHERE n.res = %(res)s
            """,
            params={"res": 9, "horizon": "now", "max_age": "30min"},
            check_params=_check_nowcast,
        ),
        Indicator(
            "rain_mm_h", "Latest rain-gauge intensity", "mm/h", _SENSOR_SQL,
            params={"kind": "rain_gauge", "max_age": "1h"}, check_params=_check_age,
        ),
        Indicator(
            "water_level_m", "Latest water-level reading", "m", _SENSOR_SQL,
            params={"kind": "water_level", "max_age": "1h"}, check_params=_check_age,
        ),
        Indicator(
            "risk_level", "Risk level of a cell (blue 1, yellow 2, orange 3, red 4)", "level",
            """
            SELECT twin.h3_to_hex(r.cell) AS subject, r.cell, c.area_id AS patch,
                   array_position(%(levels)s::text[], r.level)::float8 AS value,
                   NULL::bigint AS run_id
            FROM twin.risk_score r
            LEFT JOIN twin.cell_stats c ON c.res = r.res AND c.cell = r.cell
            WHERE r.layer_id = %(layer)s AND r.res = %(res)s
            """,
            params={"layer": "onemap", "res": 9, "levels": list(LEVELS)},
            check_params=_check_layer,
        ),
        Indicator(
            "delay_index", "City delay index, latest traffic run", "index",
            """
            SELECT 'city' AS subject, NULL::bigint AS cell,
                   (SELECT id FROM twin.admin_area WHERE level = 'city' ORDER BY id LIMIT 1)
                     AS patch,
                   (r.summary ->> 'delay_index')::float8 AS value, r.id AS run_id
            FROM twin.sim_run r
            WHERE r.id = %(traffic_run)s AND r.summary ? 'delay_index'
            """,
        ),
    )
}  # fmt: skip
