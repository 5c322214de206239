"""Access control: users and tokens, roles, scopes enforced by row-level security in PostgreSQL
and by the API, across REST, OGC API Features and tiles; and the audit trail.

Two districts, an operator scoped to each. Expected rows come from direct SQL on the admin
hierarchy (``twin.area_subtree``), run by the test's own superuser connection.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from twin.access.tokens import add_user, forget_tokens, set_disabled
from twin.api.app import create_app
from twin.city.demo import build_demo
from twin.settings import Settings

from .test_tiles import tile_of


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    url = make_database("twin_access")
    s = Settings(_env_file=None, database_url=url, data_dir=tmp_path_factory.mktemp("access"))
    build_demo(s, size="tiny", seed=11)
    return s


@pytest.fixture(scope="module")
def world(settings: Settings) -> dict[str, Any]:
    """Districts A and B, a task and an alert in a grid patch of each, and users."""
    out: dict[str, Any] = {}
    with psycopg.connect(settings.database_url) as c:
        districts = c.execute(
            "SELECT id, code FROM twin.admin_area WHERE level = 'district' ORDER BY code LIMIT 2"
        ).fetchall()
        assert len(districts) == 2, "the tiny city has two districts"
        for key, (did, code) in zip("AB", districts, strict=True):
            patch = c.execute(
                "SELECT id FROM twin.admin_area WHERE level = 'grid' AND id IN (SELECT twin.area_subtree(%s))"
                " ORDER BY id LIMIT 1",
                (did,),
            ).fetchone()[0]  # type: ignore[index]
            task = c.execute(
                "INSERT INTO twin.task (title, state, priority, area_id) VALUES (%s, 'open', 2, %s) RETURNING id",
                (f"check drains in {code}", patch),
            ).fetchone()[0]  # type: ignore[index]
            alert = c.execute(
                "INSERT INTO twin.alert (rule_id, dedup_key, level, status, area_id, message)"
                " VALUES ('test', %s, 'orange', 'active', %s, 'water') RETURNING id",
                (f"test:{code}", patch),
            ).fetchone()[0]  # type: ignore[index]
            out[key] = {"district": did, "code": code, "patch": patch, "task": task, "alert": alert}
        for key in "AB":
            _, token = add_user(c, f"op{key}", "operator", f"district:{out[key]['code']}")
            out[key]["token"] = token
        _, out["viewer"] = add_user(c, "viewer", "viewer", f"district:{out['A']['code']}")
        _, out["admin"] = add_user(c, "boss", "admin")
        c.commit()
    return out


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _subtree_ids(settings: Settings, table: str, district: int) -> set[int]:
    with psycopg.connect(settings.database_url) as c:
        return {
            r[0]
            for r in c.execute(
                f"SELECT id FROM twin.{table} WHERE area_id IN (SELECT twin.area_subtree(%s))",
                (district,),
            )
        }


def test_only_the_token_hash_is_stored(settings: Settings, world: dict[str, Any]) -> None:
    token = world["A"]["token"]
    with psycopg.connect(settings.database_url) as c:
        stored = c.execute("SELECT token_hash FROM twin.app_user WHERE name = 'opA'").fetchone()[0]  # type: ignore[index]
        assert stored == hashlib.sha256(token.encode()).hexdigest() != token
        dump = json.dumps(c.execute("SELECT row_to_json(u) FROM twin.app_user u").fetchall())
    assert token not in dump


def test_rest_reads_stay_in_scope(
    settings: Settings, client: TestClient, world: dict[str, Any]
) -> None:
    a, b = world["A"], world["B"]
    tasks = client.get("/api/tasks?limit=1000", headers=auth(a["token"])).json()["tasks"]
    assert {t["id"] for t in tasks} == _subtree_ids(settings, "task", a["district"])
    assert a["task"] in {t["id"] for t in tasks} and b["task"] not in {t["id"] for t in tasks}
    assert client.get(f"/api/tasks/{b['task']}", headers=auth(a["token"])).status_code == 404
    alerts = client.get("/api/alerts?status=active&limit=1000", headers=auth(a["token"])).json()[
        "alerts"
    ]
    assert {x["id"] for x in alerts} <= _subtree_ids(settings, "alert", a["district"])
    assert a["alert"] in {x["id"] for x in alerts} and b["alert"] not in {x["id"] for x in alerts}
    # The anonymous public and the unscoped admin see both (anonymous reads are open today).
    both = {
        t["id"]
        for t in client.get("/api/tasks?limit=1000", headers=auth(world["admin"])).json()["tasks"]
    }
    assert {a["task"], b["task"]} <= both


def test_writes_outside_the_scope_change_nothing(
    settings: Settings, client: TestClient, world: dict[str, Any]
) -> None:
    a, b = world["A"], world["B"]
    r = client.patch(
        f"/api/tasks/{b['task']}", json={"state": "accepted"}, headers=auth(a["token"])
    )
    assert r.status_code == 404
    r = client.patch(
        f"/api/alerts/{b['alert']}", json={"status": "acknowledged"}, headers=auth(a["token"])
    )
    assert r.status_code == 404
    r = client.post(
        "/api/tasks", json={"title": "sneak", "area": b["patch"]}, headers=auth(a["token"])
    )
    assert r.status_code == 403
    r = client.patch(f"/api/tasks/{a['task']}", json={"area": b["patch"]}, headers=auth(a["token"]))
    assert r.status_code == 403  # reassigning into another district is refused by row security
    with psycopg.connect(settings.database_url) as c:
        assert c.execute(
            "SELECT state, area_id FROM twin.task WHERE id = %s", (b["task"],)
        ).fetchone() == ("open", b["patch"])
        assert c.execute(
            "SELECT area_id FROM twin.task WHERE id = %s", (a["task"],)
        ).fetchone() == (a["patch"],)
        assert c.execute(
            "SELECT status FROM twin.alert WHERE id = %s", (b["alert"],)
        ).fetchone() == ("active",)
        assert c.execute("SELECT count(*) FROM twin.task WHERE title = 'sneak'").fetchone() == (0,)
    # Within the scope the same operator may act.
    r = client.patch(
        f"/api/tasks/{a['task']}", json={"state": "accepted"}, headers=auth(a["token"])
    )
    assert r.status_code == 200 and r.json()["state"] == "accepted"


def test_features_and_tiles_stay_in_scope(
    settings: Settings, client: TestClient, world: dict[str, Any]
) -> None:
    a, b = world["A"], world["B"]
    mine = _subtree_ids(settings, "event", a["district"])
    theirs = _subtree_ids(settings, "event", b["district"])
    assert mine and theirs
    got = client.get("/collections/events/items?limit=10000", headers=auth(a["token"])).json()
    assert {f["id"] for f in got["features"]} == mine
    other = next(iter(theirs))
    assert (
        client.get(f"/collections/events/items/{other}", headers=auth(a["token"])).status_code
        == 404
    )
    assert client.get(f"/collections/events/items/{other}").status_code == 200  # public: open today
    # A tile holding events of both districts: each operator's tile has only its own.
    with psycopg.connect(settings.database_url) as c:
        lon, lat = c.execute(
            "SELECT ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)) FROM twin.admin_area WHERE level = 'city'"
        ).fetchone()  # type: ignore[misc]
    z = 13
    x, y = tile_of(lon, lat, z)
    full = client.get(f"/tiles/events/{z}/{x}/{y}.mvt")
    ids_all = {f["id"] for f in mapbox_vector_tile.decode(full.content)["events"]["features"]}
    scoped = client.get(f"/tiles/events/{z}/{x}/{y}.mvt", headers=auth(a["token"]))
    assert scoped.headers["cache-control"].startswith("private")
    ids_a = (
        {f["id"] for f in mapbox_vector_tile.decode(scoped.content)["events"]["features"]}
        if scoped.status_code == 200
        else set()
    )
    assert ids_a <= mine and ids_a < ids_all and ids_all & theirs
    assert scoped.headers["etag"] != full.headers["etag"]
    # The cached public tile is not handed to the scoped caller, nor the other way round.
    again = client.get(f"/tiles/events/{z}/{x}/{y}.mvt")
    assert {
        f["id"] for f in mapbox_vector_tile.decode(again.content)["events"]["features"]
    } == ids_all


def test_rights_follow_the_role(client: TestClient, world: dict[str, Any]) -> None:
    viewer = auth(world["viewer"])
    assert client.get("/api/tasks", headers=viewer).status_code == 200
    assert (
        client.patch(
            f"/api/tasks/{world['A']['task']}", json={"priority": 1}, headers=viewer
        ).status_code
        == 403
    )
    assert client.post("/api/simulations/flood", json={}, headers=viewer).status_code == 403
    assert client.post("/api/alerts/evaluate", headers=viewer).status_code == 403


def test_bad_and_revoked_tokens_get_401(settings: Settings, client: TestClient) -> None:
    for header in (
        "Bearer twin_not-a-token",
        "Bearer",
        "Basic dXNlcjpwdw==",
        "Bearer " + "twin_" + "x" * 300,
    ):
        r = client.get("/api/tasks", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert r.headers["www-authenticate"].startswith("Bearer")
    with psycopg.connect(settings.database_url) as c:
        _, token = add_user(c, "leaver", "viewer")
        c.commit()
    assert client.get("/api/tasks", headers=auth(token)).status_code == 200
    with psycopg.connect(settings.database_url) as c:
        set_disabled(c, "leaver")
        c.commit()
    forget_tokens()  # the API remembers tokens for a few seconds; a new process would not
    assert client.get("/api/tasks", headers=auth(token)).status_code == 401


def test_row_security_holds_in_the_database_itself(
    settings: Settings, world: dict[str, Any]
) -> None:
    """Without the API: as role twin_api with A's scope, B's rows are invisible and immovable."""
    a, b = world["A"], world["B"]
    with psycopg.connect(settings.database_url) as c:
        scope = ",".join(str(i) for i in sorted(_areas(c, a["district"])))
        c.execute(
            "SELECT set_config('role', 'twin_api', true), set_config('twin.scope', %s, true)",
            (scope,),
        )
        seen = {r[0] for r in c.execute("SELECT id FROM twin.task")}
        assert a["task"] in seen and b["task"] not in seen
        assert (
            c.execute("UPDATE twin.task SET priority = 1 WHERE id = %s", (b["task"],)).rowcount == 0
        )
        assert c.execute("DELETE FROM twin.alert WHERE id = %s", (b["alert"],)).rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("INSERT INTO twin.event (type, status, source, occurred_at, area_id, geom)"
                      " VALUES ('fire', 'open', 'test', now(), %s,"
                      " ST_SetSRID(ST_MakePoint(120.16, 30.27), 4326))", (b["patch"],))  # fmt: skip
        c.rollback()
        # An API connection outside a request's scope ('none') sees no scoped rows at all.
        c.execute(
            "SELECT set_config('role', 'twin_api', true), set_config('twin.scope', 'none', true)"
        )
        assert c.execute("SELECT count(*) FROM twin.event").fetchone() == (0,)
        c.rollback()


def _areas(c: psycopg.Connection, district: int) -> set[int]:
    return {r[0] for r in c.execute("SELECT twin.area_subtree(%s)", (district,))}


def test_writes_are_audited_and_listed(
    settings: Settings, client: TestClient, world: dict[str, Any]
) -> None:
    a = world["A"]
    r = client.patch(f"/api/tasks/{a['task']}", json={"priority": 3}, headers=auth(a["token"]))
    assert r.status_code == 200
    with psycopg.connect(settings.database_url) as c:
        row = c.execute(
            "SELECT u.name, l.action, l.resource, l.area_id FROM twin.audit_log l JOIN twin.app_user u ON u.id = l.user_id"
            " WHERE l.resource = %s ORDER BY l.id DESC LIMIT 1",
            (f"task/{a['task']}",),
        ).fetchone()
    assert row == ("opA", "task.update", f"task/{a['task']}", a["patch"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(TWIN_DATABASE_URL=settings.database_url, TWIN_DATA_DIR=str(Path(settings.data_dir)))
    out = subprocess.run([sys.executable, "-m", "twin", "audit", "--user", "opA", "--json"],
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    entries = json.loads(out.stdout)["entries"]
    assert entries and all(e["actor"] == "opA" for e in entries)
    assert any(
        e["action"] == "task.update" and e["resource"] == f"task/{a['task']}" for e in entries
    )


def test_users_cli_prints_the_token_once_and_checks_the_scope(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(TWIN_DATABASE_URL=settings.database_url, TWIN_DATA_DIR=str(Path(settings.data_dir)))

    def twin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "twin", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    r = twin("users", "add", "grid7", "--role", "operator", "--scope", "district:NOPE")
    assert r.returncode == 2 and "district:NOPE" in r.stderr
    r = twin("users", "add", "grid7", "--role", "wizard")
    assert r.returncode == 2 and "role" in r.stderr
    r = twin("users", "add", "grid7", "--role", "viewer", "--json")
    assert r.returncode == 0, r.stderr
    token = json.loads(r.stdout)["token"]
    listed = twin("users", "list", "--json")
    assert token not in listed.stdout and "grid7" in listed.stdout


def test_me_names_the_caller(client: TestClient, world: dict[str, Any]) -> None:
    assert client.get("/api/me").json()["role"] == "public"
    me = client.get("/api/me", headers=auth(world["A"]["token"])).json()
    assert me["name"] == "opA" and me["role"] == "operator"
    assert me["scope"] == [f"district:{world['A']['code']}"] and me["can_operate"]
    assert not client.get("/api/me", headers=auth(world["viewer"])).json()["can_operate"]
