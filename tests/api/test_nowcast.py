"""``/api/nowcast`` and ``/api/nowcast/cells`` on the tiny demo twin after a step; expected
values by direct SQL on the stored step."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from twin.api.app import create_app
from twin.runs.nowcast import NowcastParams, step
from twin.settings import Settings

from ..runs.nowcast_world import after_the_latest_step, rain

T_API = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)  # after tests/runs/test_nowloop.py's steps


def q(settings: Settings, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def stepped(tiny_settings: Settings) -> dict[str, Any]:
    global T_API  # later than any step other tests left in the shared twin
    T_API = after_the_latest_step(tiny_settings.database_url or "", T_API)
    rain(tiny_settings.database_url or "", "API", T_API, 120.0, range(-60, 1))
    return step(tiny_settings, NowcastParams(window_s=1800), as_of=T_API)


def test_latest_step(
    tiny_client: TestClient, stepped: dict[str, Any], tiny_settings: Settings
) -> None:
    r = tiny_client.get("/api/nowcast")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["step_id"] == stepped["step_id"]
    assert datetime.fromisoformat(body["as_of"]) == T_API
    ((gauges, mx_now, mx_ahead),) = q(tiny_settings,
        "SELECT gauges, max_depth_now_m, max_depth_horizon_m FROM twin.nowcast_step"
        " WHERE id = %s", stepped["step_id"])  # fmt: skip
    assert body["gauges_used"] == sorted(gauges["used"]) == ["API-NW", "API-SE"]
    assert body["gauges_stale"] == gauges["stale"]
    assert body["max_depth_now_m"] == mx_now and body["max_depth_horizon_m"] == mx_ahead
    res = tiny_settings.finest_resolution
    assert body["res"] == res
    for row in body["cells_over"]:
        ((now, ahead),) = q(tiny_settings,
            "SELECT count(*) FILTER (WHERE depth_now_m >= %s),"
            " count(*) FILTER (WHERE depth_horizon_m >= %s) FROM twin.nowcast_cell"
            " WHERE step_id = %s AND res = %s",
            row["depth_m"], row["depth_m"], stepped["step_id"], res)  # fmt: skip
        assert (row["now"], row["horizon"]) == (now, ahead)
    assert [row["depth_m"] for row in body["cells_over"]] == [0.15, 0.3]
    assert body["skill"]["sensors"] == q(tiny_settings,
        "SELECT count(*) FROM twin.nowcast_skill WHERE step_id = %s", stepped["step_id"])[0][0]  # fmt: skip


@pytest.mark.parametrize("horizon", ["now", "+60", "60"])
def test_cells(
    tiny_client: TestClient, stepped: dict[str, Any], tiny_settings: Settings, horizon: str
) -> None:
    res = min(tiny_settings.h3_resolutions)
    r = tiny_client.get("/api/nowcast/cells", params={"horizon": horizon, "res": res})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = dict(q(tiny_settings,
        "SELECT twin.h3_to_hex(cell), CASE WHEN %s THEN depth_now_m ELSE depth_horizon_m END"
        " FROM twin.nowcast_cell WHERE step_id = %s AND res = %s",
        horizon == "now", stepped["step_id"], res))  # fmt: skip
    assert {c["h3"]: c["depth_m"] for c in body["cells"]} == expected
    assert body["count"] == len(expected) > 0
    assert body["horizon"] == ("now" if horizon == "now" else "+60")
    assert body["horizon_s"] == (0.0 if horizon == "now" else 3600.0)
    # no people count in any form
    assert not any("people" in key for c in body["cells"] for key in c)


def test_min_depth_and_bad_parameters(tiny_client: TestClient, stepped: dict[str, Any]) -> None:
    deep = tiny_client.get("/api/nowcast/cells", params={"min_depth": 0.3}).json()
    assert all(c["depth_m"] >= 0.3 for c in deep["cells"])
    r = tiny_client.get("/api/nowcast/cells", params={"horizon": "+30"})
    assert r.status_code == 400 and "horizon" in r.text
    r = tiny_client.get("/api/nowcast/cells", params={"res": 3})
    assert r.status_code == 400 and "res" in r.text


@pytest.fixture(scope="module")
def general_client(tiny_settings: Settings) -> Iterator[TestClient]:
    """The public cleared for general data only (the secure default)."""
    s = tiny_settings.model_copy(update={"public_clearance": "general", "live_alerts": False})
    with TestClient(create_app(s)) as c:
        yield c


def test_skill_needs_the_sensor_readings_clearance(
    general_client: TestClient, stepped: dict[str, Any]
) -> None:
    body = general_client.get("/api/nowcast").json()
    assert body["step_id"] == stepped["step_id"] and body["skill"] is None
    assert general_client.get("/api/nowcast/cells").status_code == 200
