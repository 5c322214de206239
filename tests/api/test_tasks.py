"""``/api/tasks`` and ``twin tasks``: dispatch, track and move tasks on a tiny demo city.

Where a task lands is checked against independent PostGIS queries written here (cell centres
from h3 in the test, ST_Contains on the patch polygons, parent_id walked one step at a time),
not against the functions the code uses.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from twin.api.app import create_app
from twin.city.demo import build_demo
from twin.cli import app as cli_app
from twin.settings import Settings

LEVELS_UP = ["grid", "community", "street", "district", "city"]


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    s = Settings(
        _env_file=None, database_url=make_database("twin_tasks"),
        data_dir=tmp_path_factory.mktemp("tasks"),
    )  # fmt: skip
    build_demo(s, size="tiny", seed=7)
    return s


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def rows(settings: Settings, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(query, params).fetchall()


def one(settings: Settings, query: str, params: Any = None) -> Any:
    found = rows(settings, query, params)
    return found[0] if found else None


def patch_holding(settings: Settings, cell: str) -> int | None:
    """The grid patch whose polygon contains the cell's centre, straight from PostGIS."""
    lat, lng = h3.cell_to_latlng(cell)
    row = one(settings,
              "SELECT id FROM twin.admin_area WHERE level = 'grid'"
              " AND ST_Contains(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))", (lng, lat))  # fmt: skip
    return row[0] if row else None


def ancestor(settings: Settings, area_id: int, level: str) -> int:
    """Walk parent_id one row at a time until ``level``."""
    current: int | None = area_id
    while current is not None:
        lvl, parent = one(settings, "SELECT level, parent_id FROM twin.admin_area WHERE id = %s",
                          (current,))  # fmt: skip
        if lvl == level:
            return current
        current = parent
    raise AssertionError(f"no {level} above {area_id}")


@pytest.fixture(scope="module")
def patches(settings: Settings) -> list[tuple[int, str, float, float]]:
    """Grid patches: id, code and a point inside each (lon, lat)."""
    return rows(settings,
                "SELECT id, code, ST_X(p), ST_Y(p) FROM (SELECT id, code, ST_PointOnSurface(geom) p"
                " FROM twin.admin_area WHERE level = 'grid') s ORDER BY id")  # fmt: skip


def cells_in_city(settings: Settings, patches: list, res: int, n: int = 6) -> list[str]:
    out = []
    for _, _, lng, lat in patches[:: max(1, len(patches) // n)][:n]:
        cell = h3.latlng_to_cell(lat, lng, res)
        if patch_holding(settings, cell) is not None:
            out.append(cell)
    assert out
    return out


def dispatch(client: TestClient, **body: Any) -> dict:
    r = client.post("/api/tasks", json={"title": "check the drains", **body})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/api/tasks/{r.json()['id']}"
    return r.json()


def patch(client: TestClient, task_id: int, expect: int = 200, **body: Any) -> dict:
    r = client.patch(f"/api/tasks/{task_id}", json=body)
    assert r.status_code == expect, r.text
    return r.json()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# ------------------------------------------------------------------------------ dispatch
@pytest.mark.parametrize("res", [8, 9, 10])
def test_dispatch_by_cell_lands_on_the_patch_holding_its_centre(
    client: TestClient, settings: Settings, patches: list, res: int
) -> None:
    for cell in cells_in_city(settings, patches, res):
        task = dispatch(client, cell=cell)
        assert task["area"]["id"] == patch_holding(settings, cell)
        assert task["area"]["level"] == "grid"
        assert task["cell"] == cell and task["state"] == "open" and task["priority"] == 2
        assert at(task["due_at"]) - at(task["created_at"]) == timedelta(hours=24)
        assert task["overdue"] is False
        (first,) = task["transitions"]
        assert (first["from"], first["to"], first["actor"]) == (None, "open", "anonymous")
        assert first["from_area"] is None and first["to_area"]["id"] == task["area"]["id"]
        stored = one(settings, "SELECT area_id, twin.h3_to_hex(cell) FROM twin.task WHERE id = %s",
                     (task["id"],))  # fmt: skip
        assert stored == (task["area"]["id"], cell)


def test_dispatch_outside_every_patch_is_400(client: TestClient) -> None:
    far = h3.latlng_to_cell(-45.0, -120.0, 9)  # the South Pacific
    r = client.post("/api/tasks", json={"title": "x", "cell": far})
    assert r.status_code == 400 and r.json()["parameter"] == "cell"


@pytest.mark.parametrize("level", ["community", "street", "district", "city"])
def test_dispatch_with_a_level_picks_the_patch_ancestor(
    client: TestClient, settings: Settings, patches: list, level: str
) -> None:
    cell = cells_in_city(settings, patches, 9, n=2)[-1]
    task = dispatch(client, cell=cell, level=level, priority=1)
    assert task["area"]["level"] == level
    assert task["area"]["id"] == ancestor(settings, patch_holding(settings, cell), level)
    assert at(task["due_at"]) - at(task["created_at"]) == timedelta(hours=2)


def test_dispatch_from_an_alert_acknowledges_it(
    client: TestClient, settings: Settings, patches: list
) -> None:
    community = ancestor(settings, patches[0][0], "community")
    cell = h3.latlng_to_cell(patches[0][3], patches[0][2], 9)
    with psycopg.connect(settings.database_url or "") as conn:
        alert_ids = [conn.execute(
            "INSERT INTO twin.alert (rule_id, dedup_key, level, status, area_id, cell, message)"
            " VALUES ('test', %s, 'red', %s, %s, %s, 'water rising') RETURNING id",
            (uuid.uuid4().hex, status, area, int(cell, 16)),
        ).fetchone()[0] for status, area in
            (("active", community), ("pending", None), ("resolved", community))]  # fmt: skip
    active, pending, resolved = alert_ids

    task = dispatch(client, alert_id=active)
    assert task["area"]["id"] == community and task["cell"] == cell
    assert task["alert_id"] == active
    assert one(settings, "SELECT status, acknowledged_at IS NOT NULL FROM twin.alert WHERE id = %s",
               (active,)) == ("acknowledged", True)  # fmt: skip
    # No area on the alert: the patch of its cell is responsible.
    task2 = dispatch(client, alert_id=pending)
    assert task2["area"]["id"] == patch_holding(settings, cell)
    assert one(settings, "SELECT status FROM twin.alert WHERE id = %s", (pending,)) == (
        "acknowledged",
    )
    # A resolved alert can still be followed up, and stays resolved.
    dispatch(client, alert_id=resolved)
    assert one(settings, "SELECT status, acknowledged_at FROM twin.alert WHERE id = %s",
               (resolved,)) == ("resolved", None)  # fmt: skip
    listed = client.get("/api/tasks", params={"alert": active}).json()
    assert [t["id"] for t in listed["tasks"]] == [task["id"]]
    r = client.post("/api/tasks", json={"title": "x", "alert_id": 10**12})
    assert r.status_code == 400 and r.json()["parameter"] == "alert_id"


# ----------------------------------------------------------------------------- lifecycle
def test_a_full_lifecycle_records_every_transition_in_order(
    client: TestClient, settings: Settings, patches: list
) -> None:
    task = dispatch(client, area=patches[1][1], title="clear the culvert", priority=3)
    for state in ("accepted", "in_progress", "done", "closed"):
        moved = patch(client, task["id"], state=state, note=f"now {state}")
        assert moved["state"] == state
    final = client.get(f"/api/tasks/{task['id']}").json()
    assert final["next_states"] == [] and final["overdue"] is False
    history = final["transitions"]
    assert [(h["from"], h["to"]) for h in history] == [
        (None, "open"), ("open", "accepted"), ("accepted", "in_progress"),
        ("in_progress", "done"), ("done", "closed"),
    ]  # fmt: skip
    assert all(h["actor"] == "anonymous" for h in history)
    times = [at(h["at"]) for h in history]
    assert times == sorted(times) and times[-1] <= at(final["updated_at"])
    assert [h["note"] for h in history[1:]] == [f"now {s}" for s in
                                                ("accepted", "in_progress", "done", "closed")]  # fmt: skip
    stored = rows(settings,
                  "SELECT from_state, to_state, actor, to_area_id FROM twin.task_transition"
                  " WHERE task_id = %s ORDER BY at, id", (task["id"],))  # fmt: skip
    assert [(f, t) for f, t, _, _ in stored] == [(h["from"], h["to"]) for h in history]
    assert {a for _, _, _, a in stored} == {patches[1][0]}


def snapshot(client: TestClient, settings: Settings, task_id: int) -> tuple:
    api = client.get(f"/api/tasks/{task_id}").json()
    api.pop("overdue")
    db = rows(settings, "SELECT * FROM twin.task WHERE id = %s", (task_id,))
    history = rows(settings, "SELECT * FROM twin.task_transition WHERE task_id = %s ORDER BY id",
                   (task_id,))  # fmt: skip
    return api, db, history


def test_an_illegal_patch_is_409_and_changes_nothing(
    client: TestClient, settings: Settings, patches: list
) -> None:
    task = dispatch(client, area=patches[2][1])
    before = snapshot(client, settings, task["id"])
    for body in ({"state": "done"}, {"state": "closed", "note": "x"}, {"state": "open"},
                 {"state": "in_progress", "priority": 1}):  # fmt: skip
        r = client.patch(f"/api/tasks/{task['id']}", json=body)
        assert r.status_code == 409, r.text
        assert "'open'" in r.json()["detail"] and repr(body["state"]) in r.json()["detail"]
        assert snapshot(client, settings, task["id"]) == before
    # Closed is final: neither moves nor edits.
    for state in ("accepted", "in_progress", "done", "closed"):
        patch(client, task["id"], state=state)
    closed = snapshot(client, settings, task["id"])
    for body in ({"state": "in_progress"}, {"priority": 1}, {"escalate": True}):
        assert client.patch(f"/api/tasks/{task['id']}", json=body).status_code == 409
        assert snapshot(client, settings, task["id"]) == closed


def test_reassign_and_reject_give_the_documented_codes(
    client: TestClient, settings: Settings, patches: list
) -> None:
    (a_id, a_code, *_), (b_id, b_code, *_) = patches[3], patches[4]
    task = dispatch(client, area=a_code)
    r = client.patch(f"/api/tasks/{task['id']}", json={"state": "reassigned"})
    assert r.status_code == 400 and r.json()["parameter"] == "area"
    r = client.patch(f"/api/tasks/{task['id']}", json={"area": a_code})
    assert r.status_code == 409 and a_code in r.json()["detail"]
    r = client.patch(f"/api/tasks/{task['id']}", json={"area": "no-such-area"})
    assert r.status_code == 400 and r.json()["parameter"] == "area"
    r = client.patch(f"/api/tasks/{task['id']}", json={"state": "accepted", "area": b_code})
    assert r.status_code == 400 and r.json()["parameter"] == "area"

    moved = patch(client, task["id"], state="reassigned", area=b_id, note="their patch")
    assert moved["state"] == "reassigned" and moved["area"]["id"] == b_id
    last = moved["transitions"][-1]
    assert (last["from_area"]["id"], last["to_area"]["id"], last["note"]) == (
        a_id, b_id, "their patch")  # fmt: skip
    assert one(settings, "SELECT area_id FROM twin.task WHERE id = %s", (task["id"],)) == (b_id,)

    for note in (None, "   "):
        body = {"state": "rejected"} | ({"note": note} if note else {})
        r = client.patch(f"/api/tasks/{task['id']}", json=body)
        assert r.status_code == 400 and r.json()["parameter"] == "note"
    rejected = patch(client, task["id"], state="rejected", note="not a drainage issue")
    assert rejected["state"] == "rejected"
    assert rejected["transitions"][-1]["note"] == "not a drainage issue"
    assert patch(client, task["id"], state="closed")["state"] == "closed"


def test_escalation_climbs_to_the_city_and_then_conflicts(
    client: TestClient, settings: Settings, patches: list
) -> None:
    task = dispatch(client, area=patches[5][1])
    seen = [task["area"]]
    for level in LEVELS_UP[1:]:
        up = patch(client, task["id"], escalate=True, note="beyond the patch")
        assert up["state"] == "reassigned" and up["area"]["level"] == level
        (parent,) = one(settings, "SELECT parent_id FROM twin.admin_area WHERE id = %s",
                        (seen[-1]["id"],))  # fmt: skip
        assert up["area"]["id"] == parent
        seen.append(up["area"])
    before = snapshot(client, settings, task["id"])
    r = client.patch(f"/api/tasks/{task['id']}", json={"escalate": True})
    assert r.status_code == 409 and "city" in r.json()["detail"]
    assert snapshot(client, settings, task["id"]) == before
    hops = [(h["from_area"]["id"], h["to_area"]["id"]) for h in before[0]["transitions"][1:]]
    assert hops == [(a["id"], b["id"]) for a, b in itertools.pairwise(seen)]
    r = client.patch(f"/api/tasks/{task['id']}", json={"escalate": True, "state": "accepted"})
    assert r.status_code == 400


# -------------------------------------------------------------------------- tracking
def test_overdue_is_flagged_for_late_unfinished_tasks_only(
    client: TestClient, patches: list
) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    late = dispatch(client, area=patches[6][1], due_at=past)
    finished = dispatch(client, area=patches[6][1], due_at=past)
    assert late["overdue"] is True and finished["overdue"] is True
    for state in ("accepted", "in_progress", "done"):
        moved = patch(client, finished["id"], state=state)
    assert moved["overdue"] is False
    on_time = dispatch(client, area=patches[6][1])
    assert on_time["overdue"] is False

    flagged = client.get("/api/tasks", params={"overdue": "true", "limit": 1000}).json()
    ids = {t["id"] for t in flagged["tasks"]}
    assert late["id"] in ids and finished["id"] not in ids and on_time["id"] not in ids
    assert all(t["overdue"] for t in flagged["tasks"]) and flagged["total"] == len(ids)
    fine = client.get("/api/tasks", params={"overdue": "false", "limit": 1000}).json()
    assert {finished["id"], on_time["id"]} <= {t["id"] for t in fine["tasks"]}
    assert late["id"] not in {t["id"] for t in fine["tasks"]}
    # Moving the due time into the future clears the flag.
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert patch(client, late["id"], due_at=later)["overdue"] is False


def test_the_area_filter_returns_the_whole_subtree(
    client: TestClient, settings: Settings, patches: list
) -> None:
    district = ancestor(settings, patches[0][0], "district")
    other = next(p for p in patches if ancestor(settings, p[0], "district") != district)
    made = [dispatch(client, area=patches[0][1])["id"],
            dispatch(client, area=ancestor(settings, patches[0][0], "community"))["id"],
            dispatch(client, area=district)["id"],
            dispatch(client, area=other[1])["id"]]  # fmt: skip
    parent = dict(rows(settings, "SELECT id, parent_id FROM twin.admin_area"))

    def under(area: int) -> bool:
        node: int | None = area
        while node is not None:
            if node == district:
                return True
            node = parent[node]
        return False

    expected = {t for t, a in rows(settings, "SELECT id, area_id FROM twin.task") if under(a)}
    (code,) = one(settings, "SELECT code FROM twin.admin_area WHERE id = %s", (district,))
    for ref in (code, str(district)):
        got = client.get("/api/tasks", params={"area": ref, "limit": 1000}).json()
        assert {t["id"] for t in got["tasks"]} == expected and got["total"] == len(expected)
        assert got["area"]["id"] == district
    assert set(made[:3]) <= expected and made[3] not in expected

    # Paging walks the same list newest first.
    page = client.get("/api/tasks", params={"area": code, "limit": 2, "offset": 1}).json()
    full = client.get("/api/tasks", params={"area": code, "limit": 1000}).json()
    assert [t["id"] for t in page["tasks"]] == [t["id"] for t in full["tasks"]][1:3]
    # States: repeated or comma-separated.
    patch(client, made[0], state="accepted")
    for params in ({"state": ["accepted", "done"]}, {"state": "accepted,done"}):
        got = client.get("/api/tasks", params={**params, "limit": 1000}).json()
        assert made[0] in {t["id"] for t in got["tasks"]}
        assert {t["state"] for t in got["tasks"]} <= {"accepted", "done"}


# ----------------------------------------------------------------------------- errors
def test_an_unknown_task_is_404(client: TestClient) -> None:
    assert client.get("/api/tasks/987654321").status_code == 404
    r = client.patch("/api/tasks/987654321", json={"state": "accepted"})
    assert r.status_code == 404 and "987654321" in r.json()["detail"]
    for bad in ("abc", "0", str(2**63)):
        assert client.get(f"/api/tasks/{bad}").status_code == 422


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"title": "no target"}, 400),
        ({"title": "", "area": "C"}, 422),
        ({"title": "   ", "area": "C"}, 400),
        ({"title": "x", "area": "C", "priority": 9}, 422),
        ({"title": "x", "area": "C", "priority": "high"}, 422),
        ({"title": "x", "area": "nowhere"}, 400),
        ({"title": "x", "area": True}, 422),
        ({"title": "x", "cell": "zzzz"}, 400),
        ({"title": "x", "cell": "8928308280fffff0"}, 400),
        ({"title": "x", "area": "C", "level": "planet"}, 422),
        ({"title": "x", "area": "C", "level": "grid"}, 400),  # a city has no grid above it
        ({"title": "x", "area": "C", "due_at": "2030-01-01T00:00:00"}, 422),  # no zone
        ({"title": "x", "area": "C", "due_at": "tomorrow"}, 422),
        ({"title": "x", "area": "C", "event_id": 10**12}, 400),
        ({"title": "x", "area": "C", "alert_id": 2**63}, 422),
        ({"title": "x", "area": "C", "colour": "red"}, 422),
        ([1, 2], 422),
    ],
)
def test_malformed_dispatches_are_4xx(client: TestClient, body: Any, status: int) -> None:
    before = client.get("/api/tasks", params={"limit": 1}).json()["total"]
    r = client.post("/api/tasks", json=body)
    assert r.status_code == status, r.text
    assert client.get("/api/tasks", params={"limit": 1}).json()["total"] == before


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"escalate": False}, 422),
        ({"note": "only a note"}, 422),
        ({"state": "flying"}, 422),
        ({"state": "accepted", "extra": 1}, 422),
        ({"priority": 0}, 422),
        ({"due_at": "2030-01-01"}, 422),
    ],
)
def test_malformed_updates_are_4xx(
    client: TestClient, patches: list, body: Any, status: int
) -> None:
    task = dispatch(client, area=patches[7][1])
    r = client.patch(f"/api/tasks/{task['id']}", json=body)
    assert r.status_code == status, r.text
    r = client.patch(f"/api/tasks/{task['id']}", content=b"{not json",
                     headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 422


@pytest.mark.parametrize(
    "params",
    [{"state": "flying"}, {"area": "nowhere"}, {"limit": 0}, {"offset": -1}, {"overdue": "maybe"},
     {"alert": "x"}],
)  # fmt: skip
def test_malformed_filters_are_4xx(client: TestClient, params: dict) -> None:
    assert client.get("/api/tasks", params=params).status_code in (400, 422)


def test_writes_need_the_operator_role_when_operations_are_closed(
    settings: Settings, client: TestClient, patches: list
) -> None:
    task = dispatch(client, area=patches[8][1])
    closed = settings.model_copy(update={"open_operations": False})
    with TestClient(create_app(closed)) as c:
        assert c.post("/api/tasks", json={"title": "x", "area": "C"}).status_code == 403
        r = c.patch(f"/api/tasks/{task['id']}", json={"state": "accepted"})
        assert r.status_code == 403 and "operator" in r.json()["detail"]
        assert c.get(f"/api/tasks/{task['id']}").json()["state"] == "open"


# -------------------------------------------------------------------------------- CLI
def test_the_cli_dispatches_moves_and_refuses_illegal_moves(
    settings: Settings, patches: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", settings.database_url or "")
    runner = CliRunner()

    def twin(*args: str, code: int = 0) -> Any:
        r = runner.invoke(cli_app, ["tasks", *args])
        assert r.exit_code == code, r.output
        return json.loads(r.stdout) if code == 0 and "--json" in args else r.output

    cell = cells_in_city(settings, patches, 9, n=1)[0]
    task = twin("add", "pump out the underpass", "--cell", cell, "--priority", "1",
                "--due-in", "3h", "--json")  # fmt: skip
    assert task["area"]["id"] == patch_holding(settings, cell) and task["priority"] == 1
    assert at(task["due_at"]) - at(task["created_at"]) == timedelta(hours=3)
    actor = task["transitions"][0]["actor"]
    assert actor.startswith("cli:") and len(actor) > 4
    tid = str(task["id"])

    assert twin("move", tid, "accepted", "--json")["state"] == "accepted"
    out = " ".join(twin("move", tid, "closed", code=1).split())
    assert "'accepted'" in out and "'closed'" in out and "in_progress, reassigned" in out
    up = twin("escalate", tid, "--note", "needs a pump truck", "--json")
    assert up["area"]["level"] == "community" and up["state"] == "reassigned"
    shown = twin("show", tid, "--json")
    assert [(h["from"], h["to"]) for h in shown["transitions"]] == [
        (None, "open"), ("open", "accepted"), ("accepted", "reassigned")]  # fmt: skip
    assert {h["actor"] for h in shown["transitions"]} == {actor}
    assert f"task {tid}" in twin("show", tid) and "needs a pump truck" in twin("show", tid)
    listed = twin("list", "--state", "reassigned", "--area", up["area"]["code"], "--json")
    assert int(tid) in {t["id"] for t in listed["tasks"]}
    assert "tasks" in twin("list", "--overdue")
    by_area = twin("add", "inspect", "--area", patches[0][1], "--json")
    assert by_area["area"]["id"] == patches[0][0]

    twin("move", tid, "flying", code=2)
    twin("move", tid, "reassigned", code=2)  # no --area
    twin("add", "x", code=2)  # no target
    twin("add", "x", "--cell", "nothex", code=2)
    twin("add", "x", "--area", "C", "--priority", "7", code=2)
    twin("add", "x", "--area", "C", "--due-in", "soon", code=2)
    twin("show", "987654321", code=1)
    assert "no task 987654321" in " ".join(twin("show", "987654321", code=1).split())
