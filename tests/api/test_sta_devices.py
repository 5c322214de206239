"""Who may write over HTTP: a device's token writes Observations of its own datastreams only.

A write to another datastream (single POST, through the Datastream's navigation path, or in a
CreateObservations batch) is a 403 naming the datastream, leaves no row, and leaves a
``sta.refused`` audit row. Users that are not devices keep their role's rights. Expected rows
are read back with direct SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from twin.access.tokens import add_user, forget_tokens
from twin.api.app import create_app
from twin.db.migrate import upgrade
from twin.sense.devices import add_device, set_datastreams
from twin.settings import Settings


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    url = make_database("twin_sta_devices")
    upgrade(url)
    return Settings(_env_file=None, database_url=url, data_dir=tmp_path_factory.mktemp("devs"),
                    open_operations=False)  # fmt: skip


def sql(settings: Settings, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(query, params).fetchall()


@pytest.fixture(scope="module")
def world(settings: Settings) -> dict[str, Any]:
    """Datastreams a, b and c; device A owns a, device B owns b; an operator and a viewer."""
    out: dict[str, Any] = {}
    with psycopg.connect(settings.database_url or "") as c:
        for key in ("a", "b", "c"):
            row = c.execute("INSERT INTO twin.sensor (code, kind, unit) VALUES (%s, 'rain_gauge',"
                            " 'mm/h') RETURNING id", (f"dev-{key}",)).fetchone()  # fmt: skip
            assert row is not None
            out[key] = int(row[0])
        for dev, ds in (("A", "a"), ("B", "b")):
            row, token, _ = add_device(c, f"gauge-{dev}", [out[ds]])
            out[dev], out[f"{dev}_user"] = token, row["user_id"]
        _, out["operator"] = add_user(c, "op", "operator")
        _, out["viewer"] = add_user(c, "watcher", "viewer")
    return out


@pytest.fixture(scope="module")
def client(settings: Settings, world: dict[str, Any]) -> Iterator[TestClient]:
    forget_tokens()
    with TestClient(create_app(settings)) as c:
        yield c


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def count(settings: Settings, ds: int) -> int:
    return int(sql(settings, "SELECT count(*) FROM twin.observation WHERE sensor_id = %s",
                   (ds,))[0][0])  # fmt: skip


def refusals(settings: Settings, user_id: int) -> list[tuple[Any, ...]]:
    return sql(settings, "SELECT resource, detail->>'datastream', detail->>'via' FROM"
               " twin.audit_log WHERE action = 'sta.refused' AND user_id = %s ORDER BY id",
               (user_id,))  # fmt: skip


def obs(minute: int, value: float = 1.0) -> dict[str, Any]:
    return {"phenomenonTime": f"2026-07-01T00:{minute:02d}:00Z", "result": value}


def test_a_device_writes_its_own_datastream(client: TestClient, world: dict[str, Any],
                                            settings: Settings) -> None:  # fmt: skip
    a = world["a"]
    r = client.post(f"/sta/v1.1/Datastreams({a})/Observations", json=obs(1, 4.5),
                    headers=auth(world["A"]))  # fmt: skip
    assert r.status_code == 201, r.text
    r = client.post("/sta/v1.1/Observations", json={**obs(2), "Datastream": {"@iot.id": a}},
                    headers=auth(world["A"]))  # fmt: skip
    assert r.status_code == 201, r.text
    r = client.post("/sta/v1.1/CreateObservations", headers=auth(world["A"]), json=[{
        "Datastream": {"@iot.id": a}, "components": ["phenomenonTime", "result"],
        "dataArray": [["2026-07-01T00:03:00Z", 2.0], ["2026-07-01T00:04:00Z", 3.0]]}])  # fmt: skip
    assert r.status_code == 201, r.text
    assert sql(settings, "SELECT to_char(observed_at AT TIME ZONE 'UTC', 'MI'), value FROM"
               " twin.observation WHERE sensor_id = %s ORDER BY 1", (a,)) == [
        ("01", 4.5), ("02", 1.0), ("03", 2.0), ("04", 3.0)]  # fmt: skip
    me = client.get("/api/me", headers=auth(world["A"])).json()
    assert me["datastreams"] == [a] and me["role"] == "viewer" and not me["can_operate"]


def test_a_device_writing_another_datastream_is_refused_and_audited(
    client: TestClient, world: dict[str, Any], settings: Settings
) -> None:
    b, user = world["b"], world["A_user"]
    before = len(refusals(settings, user))
    r = client.post(f"/sta/v1.1/Datastreams({b})/Observations", json=obs(10),
                    headers=auth(world["A"]))  # fmt: skip
    assert r.status_code == 403, r.text
    assert f"Datastreams({b})" in r.json()["detail"] and "gauge-A" in r.json()["detail"]
    r = client.post("/sta/v1.1/Observations", json={**obs(11), "Datastream": {"@iot.id": b}},
                    headers=auth(world["A"]))  # fmt: skip
    assert r.status_code == 403, r.text
    assert f"Datastreams({b})" in r.json()["detail"]
    assert count(settings, b) == 0
    got = refusals(settings, user)[before:]
    assert got == [(f"sta/Datastreams({b})", str(b), "http")] * 2


def test_a_batch_naming_a_foreign_datastream_is_refused_whole(
    client: TestClient, world: dict[str, Any], settings: Settings
) -> None:
    a, c, user = world["a"], world["c"], world["A_user"]
    mine = count(settings, a)
    before = len(refusals(settings, user))
    r = client.post("/sta/v1.1/CreateObservations", headers=auth(world["A"]), json=[
        {"Datastream": {"@iot.id": a}, "components": ["phenomenonTime", "result"],
         "dataArray": [["2026-07-01T01:00:00Z", 9.0]]},
        {"Datastream": {"@iot.id": c}, "components": ["phenomenonTime", "result"],
         "dataArray": [["2026-07-01T01:00:00Z", 9.0]]},
    ])  # fmt: skip
    assert r.status_code == 403, r.text
    assert f"Datastreams({c})" in r.json()["detail"]
    assert count(settings, a) == mine and count(settings, c) == 0  # nothing half-written
    assert refusals(settings, user)[before:] == [(f"sta/Datastreams({c})", str(c), "http")]


def test_a_device_creates_nothing_but_observations(
    client: TestClient, world: dict[str, Any], settings: Settings
) -> None:
    before = len(refusals(settings, world["B_user"]))
    things = sql(settings, "SELECT count(*) FROM twin.sta_thing")
    r = client.post("/sta/v1.1/Things", json={"name": "sneaky"}, headers=auth(world["B"]))
    assert r.status_code == 403 and "only Observations" in r.json()["detail"]
    assert sql(settings, "SELECT count(*) FROM twin.sta_thing") == things
    assert refusals(settings, world["B_user"])[before:] == [("sta/Things", None, "http")]
    # An unknown datastream is not the device's either: 403, not a hint that it is missing.
    r = client.post("/sta/v1.1/Datastreams(999999)/Observations", json=obs(1),
                    headers=auth(world["B"]))  # fmt: skip
    assert r.status_code == 403 and "Datastreams(999999)" in r.json()["detail"]
    # Reading is a viewer's: allowed.
    assert client.get("/sta/v1.1/Datastreams", headers=auth(world["B"])).status_code == 200


def test_users_that_are_not_devices_keep_their_rights(
    client: TestClient, world: dict[str, Any], settings: Settings
) -> None:
    b = world["b"]
    r = client.post(f"/sta/v1.1/Datastreams({b})/Observations", json=obs(20),
                    headers=auth(world["operator"]))  # fmt: skip
    assert r.status_code == 201, r.text
    assert count(settings, b) == 1
    r = client.post(f"/sta/v1.1/Datastreams({b})/Observations", json=obs(21),
                    headers=auth(world["viewer"]))  # fmt: skip
    assert r.status_code == 403 and "operator role" in r.json()["detail"]
    r = client.post(f"/sta/v1.1/Datastreams({b})/Observations", json=obs(22))
    assert r.status_code == 403  # no token, TWIN_OPEN_OPERATIONS=false
    assert sql(settings, "SELECT count(*) FROM twin.audit_log WHERE action = 'sta.refused'"
               " AND (user_id IS NULL OR user_id <> ALL(%s))", ([world["A_user"], world["B_user"]],)
               ) == [(0,)]  # fmt: skip
    assert me_datastreams(client, world["operator"]) is None


def me_datastreams(client: TestClient, token: str) -> Any:
    return client.get("/api/me", headers=auth(token)).json()["datastreams"]


def test_a_granted_datastream_is_writable_at_once(
    client: TestClient, world: dict[str, Any], settings: Settings
) -> None:
    c = world["c"]
    with psycopg.connect(settings.database_url or "") as conn:
        assert set_datastreams(conn, "gauge-B", [c]) == sorted([world["b"], c])
    r = client.post(f"/sta/v1.1/Datastreams({c})/Observations", json=obs(30),
                    headers=auth(world["B"]))  # fmt: skip
    assert r.status_code == 201, r.text
    assert count(settings, c) == 1


def test_the_api_role_reads_no_password_hash_and_writes_no_device(
    settings: Settings, world: dict[str, Any]
) -> None:
    with psycopg.connect(settings.database_url or "") as conn:
        conn.execute("SET ROLE twin_api")
        assert conn.execute("SELECT count(*) FROM twin.sense_device_datastream").fetchone()
        assert conn.execute("SELECT name FROM twin.sense_device ORDER BY id").fetchall() == [
            ("gauge-A",), ("gauge-B",)]  # fmt: skip
        for stmt in ("SELECT mqtt_password_hash FROM twin.sense_device",
                     "UPDATE twin.sense_device SET name = 'x'",
                     "DELETE FROM twin.sense_device_datastream"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(stmt)
