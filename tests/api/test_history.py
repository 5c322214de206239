"""``/api/history``: the twin at a past instant, for the time slider. The expected states come
from the rows this test writes (alert timestamps, task transitions, readings at times in June
2021, which no other test uses), worked out by hand below, not from the code under test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.api.scope_world import District, make_world
from twin.settings import Settings

T0 = datetime(2021, 6, 1, 8, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(scope="module")
def world(tiny_settings: Settings) -> dict[str, Any]:
    districts = make_world(tiny_settings, "history")
    a, b = districts["A"], districts["B"]
    with psycopg.connect(tiny_settings.database_url) as c:

        def alert(d: District, tag: str, first: int, ack: int | None, resolved: int | None) -> int:
            row = c.execute(
                "INSERT INTO twin.alert (rule_id, dedup_key, level, status, area_id, message,"
                " first_seen, last_seen, acknowledged_at, resolved_at)"
                " VALUES ('history-test', %s, 'red', %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (f"history-{tag}", "resolved" if resolved is not None else "active", d.patch,
                 f"history {tag}", at(first), at(first), None if ack is None else at(ack),
                 None if resolved is None else at(resolved)),
            ).fetchone()  # fmt: skip
            assert row is not None
            return int(row[0])

        def task(d: District, moves: list[tuple[int, str]], due: int) -> int:
            row = c.execute(
                "INSERT INTO twin.task (title, state, area_id, due_at) VALUES"
                " ('history task', %s, %s, %s) RETURNING id",
                (moves[-1][1], d.patch, at(due)),
            ).fetchone()
            assert row is not None
            prev = None
            for minute, state in moves:
                c.execute(
                    "INSERT INTO twin.task_transition (task_id, from_state, to_state, actor, at)"
                    " VALUES (%s, %s, %s, 'test', %s)",
                    (row[0], prev, state, at(minute)),
                )
                prev = state
            return int(row[0])

        ids = {
            # raised at +10, acknowledged at +30, resolved at +90
            "a1": alert(a, "a1", 10, 30, 90),
            # raised at +50, still open
            "a2": alert(a, "a2", 50, None, None),
            "b1": alert(b, "b1", 10, None, None),
            # open at +5, accepted at +40, done at +70; due at +60
            "ta": task(a, [(5, "open"), (40, "accepted"), (70, "done")], 60),
            # open at +20, never moved; due at +45
            "ta2": task(a, [(20, "open")], 45),
            "tb": task(b, [(5, "open")], 60),
        }
        c.commit()
    return {"districts": districts, "ids": ids}


def state_at(client: TestClient, d: District, minute: int) -> dict[str, Any]:
    r = client.get("/api/history", params={"at": at(minute).isoformat()}, headers=d.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    return body


def ours(
    body: dict[str, Any], ids: dict[str, int]
) -> tuple[dict[str, str], dict[str, tuple[str, bool]]]:
    by_id = {v: k for k, v in ids.items()}
    alerts = {by_id[a["id"]]: a["status"] for a in body["alerts"] if a["id"] in by_id}
    tasks = {by_id[t["id"]]: (t["state"], t["overdue"]) for t in body["tasks"] if t["id"] in by_id}
    return alerts, tasks


@pytest.mark.parametrize(
    ("minute", "alerts", "tasks"),
    [
        (0, {}, {}),
        (8, {}, {"ta": ("open", False)}),
        (20, {"a1": "active"}, {"ta": ("open", False), "ta2": ("open", False)}),
        (45, {"a1": "acknowledged"}, {"ta": ("accepted", False), "ta2": ("open", False)}),
        (
            65,
            {"a1": "acknowledged", "a2": "active"},
            {"ta": ("accepted", True), "ta2": ("open", True)},
        ),
        (95, {"a2": "active"}, {"ta": ("done", False), "ta2": ("open", True)}),
    ],
)
def test_the_state_at_each_instant(
    tiny_client: TestClient, world: dict[str, Any], minute: int,
    alerts: dict[str, str], tasks: dict[str, tuple[str, bool]],
) -> None:  # fmt: skip
    a = world["districts"]["A"]
    got_alerts, got_tasks = ours(state_at(tiny_client, a, minute), world["ids"])
    assert got_alerts == alerts
    assert got_tasks == tasks


def test_another_district_sees_none_of_it(tiny_client: TestClient, world: dict[str, Any]) -> None:
    b = world["districts"]["B"]
    got_alerts, got_tasks = ours(state_at(tiny_client, b, 65), world["ids"])
    assert got_alerts == {"b1": "active"} and got_tasks == {"tb": ("open", True)}


def test_readings_are_the_latest_of_the_hour_before(
    tiny_client: TestClient, tiny_settings: Settings, world: dict[str, Any]
) -> None:
    with psycopg.connect(tiny_settings.database_url) as c:
        row = c.execute("SELECT id FROM twin.sensor WHERE kind = 'rain_gauge' LIMIT 1").fetchone()
        assert row is not None
        c.cursor().executemany(
            "INSERT INTO twin.observation (sensor_id, observed_at, value) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            [(row[0], at(m), v) for m, v in ((0, 1.0), (30, 12.5), (200, 3.0))],
        )
        c.commit()
    a = world["districts"]["A"]

    def reading(minute: int) -> float | None:
        got = [x["value"] for x in state_at(tiny_client, a, minute)["readings"]
               if x["datastream"] == row[0]]  # fmt: skip
        return got[0] if got else None

    assert reading(29) == 1.0
    assert reading(31) == 12.5
    assert reading(100) is None  # nothing in the hour before
    assert reading(200) == 3.0


@pytest.mark.parametrize("bad", ["yesterday", "2021-13-01T00:00:00Z", "3000-01-01T00:00:00Z"])
def test_a_bad_instant_is_a_400_naming_it(tiny_client: TestClient, bad: str) -> None:
    r = tiny_client.get("/api/history", params={"at": bad})
    assert r.status_code == 400 and "at" in r.text


def test_an_unknown_area_is_a_400(tiny_client: TestClient) -> None:
    r = tiny_client.get("/api/history", params={"area": "no-such-area"})
    assert r.status_code == 400 and "area" in r.text
