"""Read replicas: `twin db start --replica N` on a throwaway private cluster of this module's
own (the shared test cluster is left alone), and the API reading from them.

Expected values come from the primary itself (direct SQL on the superuser connection), never
from the API under test; "which server answered" from the read router's counters.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from twin.access.tokens import add_user
from twin.api.app import create_app
from twin.db.cluster import LocalCluster
from twin.db.migrate import upgrade
from twin.db.replicas import ReplicaSet
from twin.settings import Settings

pytestmark = pytest.mark.cluster

TWIN = [sys.executable, "-m", "twin"]
LON, LAT, Z = 120.16, 30.27, 15
DELAY_MS = 3000  # replica r2 replays each commit this late


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """Slippy-map tile numbers (the standard formula, independent of the server)."""
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


X, Y = tile_of(LON, LAT, Z)
TILE = f"/tiles/buildings/{Z}/{X}/{Y}.mvt"


def twin(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWIN_", "PG"))}
    env["TWIN_DATA_DIR"] = str(data_dir)
    return subprocess.run([*TWIN, *args], env=env, capture_output=True, text=True, timeout=300)


class World:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.cluster = LocalCluster(data)
        state = self.cluster.load()
        assert state is not None
        self.primary = state.url
        self.replicas = {r["name"]: r for r in ReplicaSet(self.cluster).status()}

    def url(self, name: str) -> str:
        return str(self.replicas[name]["url"])

    def settings(self, *replicas: str, **kw: Any) -> Settings:
        base: dict[str, Any] = {
            "database_url": self.primary,
            "read_database_urls": ",".join(self.url(r) for r in replicas),
            "data_dir": self.data,
            "read_replica_retry_s": 1.0,
            "sense_maintenance_interval_s": 0,
            "pool_timeout_s": 3,
        }
        return Settings(_env_file=None, **{**base, **kw})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("replicas") / "twin-data"
    try:
        r = twin(data, "db", "start", "--replica", "1", "--json")
        assert r.returncode == 0, r.stderr
        url = json.loads(r.stdout)["url"]
        upgrade(url)  # replicated like any other write
        r = twin(data, "db", "start", "--replica", "2", "--replica-delay-ms", str(DELAY_MS))
        assert r.returncode == 0, r.stderr
        w = World(data)
        assert w.replicas["r1"]["apply_delay_ms"] == 0
        assert w.replicas["r2"]["apply_delay_ms"] == DELAY_MS
        yield w
    finally:
        twin(data, "db", "stop")
        state = LocalCluster(data).load()
        if state is not None:  # the server's files may live outside data (/var/tmp/...)
            shutil.rmtree(Path(state.pgdata).parent, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)


def sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as c:
        cur = c.execute(query, params)
        return cur.fetchall() if cur.description else []


def add_building(url: str, dx_m: float) -> int:
    """A 20 m square building ``dx_m`` east of the test tile's point; bumps the layer version
    in the same transaction (as every loader does)."""
    with psycopg.connect(url) as c:
        row = c.execute(
            "INSERT INTO twin.building (use, geom) SELECT 'residential', ST_Multi(ST_Transform("
            " ST_Buffer(ST_Translate(ST_Transform(ST_SetSRID(ST_Point(%s, %s), 4326), 3857),"
            " %s, 0), 10, 'quad_segs=1'), 4326)) RETURNING id",
            (LON, LAT, dx_m),
        ).fetchone()
        c.execute(
            "INSERT INTO twin.layer_version (layer) VALUES ('building') ON CONFLICT (layer)"
            " DO UPDATE SET version = twin.layer_version.version + 1"
        )
    assert row is not None
    return int(row[0])


def replica_has(url: str, bid: int) -> bool:
    return bool(sql(url, "SELECT count(*) FROM twin.building WHERE id = %s", (bid,))[0][0])


def wait_for(url: str, bid: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not replica_has(url, bid):
        assert time.monotonic() < deadline, f"building {bid} never reached {url}"
        time.sleep(0.05)


def tile_ids(client: TestClient) -> tuple[set[int], str]:
    r = client.get(TILE)
    assert r.status_code in (200, 204), r.text
    if r.status_code == 204:
        return set(), r.headers["etag"]
    feats = mapbox_vector_tile.decode(r.content).get("buildings", {"features": []})["features"]
    return {int(f["id"]) for f in feats}, r.headers["etag"]


def primary_ids(world: World) -> set[int]:
    rows = sql(
        world.primary,
        "SELECT id FROM twin.building WHERE ST_Intersects(geom_3857, ST_TileEnvelope(%s, %s, %s))",
        (Z, X, Y),
    )
    return {int(r[0]) for r in rows}


def test_cli_replicas_are_streaming_standbys(world: World) -> None:
    r = twin(world.data, "db", "start", "--replica", "2", "--json")  # twice is harmless
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    assert [x["started"] for x in again["replicas"]] == [False, False]
    assert {x["url"] for x in again["replicas"]} == {world.url("r1"), world.url("r2")}

    r = twin(world.data, "db", "status", "--json")
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    ports = {status["port"], *(x["port"] for x in status["replicas"])}
    assert len(ports) == 3  # a port each
    assert len({status["pgdata"], *(x["pgdata"] for x in status["replicas"])}) == 3
    for rep in status["replicas"]:
        assert rep["running"] and rep["in_recovery"] and rep["streaming"], rep
        assert rep["replay_lsn"] and rep["lag_bytes"] is not None
    human = twin(world.data, "db", "status").stdout
    assert "replica r1: running" in human and "replayed to" in human

    # A physical standby: read-only, and what the primary commits shows up there.
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        sql(world.url("r1"), "CREATE TABLE twin.nope (i int)")
    bid = add_building(world.primary, 5000)
    try:
        wait_for(world.url("r1"), bid)
        wait_for(world.url("r2"), bid)  # r2 too, DELAY_MS later
    finally:
        sql(world.primary, "DELETE FROM twin.building WHERE id = %s", (bid,))

    # Fewer replicas: the ones beyond are stopped, their data kept; more again: restarted.
    r = twin(world.data, "db", "start", "--replica", "1", "--json")
    assert r.returncode == 0, r.stderr
    assert [x["name"] for x in json.loads(r.stdout)["replicas"]] == ["r1"]
    running = {x["name"]: x["running"] for x in ReplicaSet(world.cluster).status()}
    assert running == {"r1": True, "r2": False}
    # stop takes the replicas down with the primary; a plain start brings them all back.
    r = twin(world.data, "db", "stop")
    assert r.returncode == 0 and "replicas r1" in r.stdout, r.stdout
    assert not any(x["running"] for x in ReplicaSet(world.cluster).status())
    r = twin(world.data, "db", "start", "--json")
    assert r.returncode == 0, r.stderr
    back = json.loads(r.stdout)["replicas"]
    assert [(x["name"], x["started"]) for x in back] == [("r1", True), ("r2", True)]
    assert {x["url"] for x in back} == {world.url("r1"), world.url("r2")}  # same ports


def test_reads_go_to_the_replica_as_the_caller(world: World) -> None:
    """Features reads run on the replica with the caller's role and scope: row security there
    hands a scoped viewer its district's events only, as on the primary."""
    with psycopg.connect(world.primary) as c:
        ids = []
        for code, dx in (("RD1", 0.0), ("RD2", 0.01)):
            ids.append(c.execute(
                "INSERT INTO twin.admin_area (level, code, name, geom) VALUES ('district', %s, %s,"
                " ST_Multi(ST_MakeEnvelope(%s, %s, %s, %s, 4326))) RETURNING id",
                (code, code, LON + dx, LAT, LON + dx + 0.01, LAT + 0.01),
            ).fetchone()[0])  # type: ignore[index]  # fmt: skip
        events = [c.execute(
            "INSERT INTO twin.event (type, source, occurred_at, area_id, geom) VALUES"
            " ('flooding', 'hotline', now(), %s, ST_SetSRID(ST_Point(%s, %s), 4326)) RETURNING id",
            (aid, LON + 0.005 + 0.01 * i, LAT + 0.005),
        ).fetchone()[0] for i, aid in enumerate(ids)]  # type: ignore[index]  # fmt: skip
        _, token = add_user(c, "replica-viewer", "viewer", "district:RD1")
    try:
        wait_for_sql(world.url("r1"), "SELECT count(*) FROM twin.app_user WHERE name = %s",
                     ("replica-viewer",))  # fmt: skip
        # A wait long enough for any commit (the token look-up's) to reach r1 on a busy machine.
        app = create_app(world.settings("r1", read_replica_wait_ms=5000))
        with TestClient(app) as client:
            reads = app.state.reads
            everyone = client.get("/collections/events/items")
            assert everyone.status_code == 200, everyone.text
            got = {f["id"] for f in everyone.json()["features"]}
            assert set(events) <= got
            before = reads.stats.replica
            mine = client.get("/collections/events/items",
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            assert mine.status_code == 200, mine.text
            assert {f["id"] for f in mine.json()["features"]} == {events[0]}
            assert reads.stats.replica == before + 1  # served by the replica
            assert reads.stats.by_replica == {"read1": reads.stats.replica}

            # The viewer's tiles too: built on the replica, under the viewer's scope.
            tx, ty = tile_of(LON + 0.01, LAT + 0.005, 12)
            path = f"/tiles/events/12/{tx}/{ty}.mvt"
            before = reads.stats.replica
            r = client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            feats = mapbox_vector_tile.decode(r.content)["events"]["features"]
            assert {f["id"] for f in feats} == {events[0]}
            assert reads.stats.replica == before + 1
            r = client.get(path)
            assert r.status_code == 200, r.text
            feats = mapbox_vector_tile.decode(r.content)["events"]["features"]
            assert set(events) <= {f["id"] for f in feats}
    finally:
        sql(world.primary, "DELETE FROM twin.event WHERE id = ANY(%s)", (events,))
        sql(world.primary, "DELETE FROM twin.app_user WHERE name = 'replica-viewer'")
        sql(world.primary, "DELETE FROM twin.admin_area WHERE id = ANY(%s)", (ids,))


def wait_for_sql(url: str, query: str, params: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not sql(url, query, params)[0][0]:
        assert time.monotonic() < deadline, f"{query} never true on {url}"
        time.sleep(0.05)


@pytest.mark.parametrize("wait_ms", [100, DELAY_MS + 2000])
def test_no_stale_tile_under_a_new_version(world: World, wait_ms: int) -> None:
    """r2 replays 3 s late. A tile read just after a write that bumped the layer version must
    hold the write: built on the primary when r2 stays behind past the wait (100 ms), or on
    r2 once it has caught up (a wait longer than the delay). Never old content under the new
    version, in the answer or in the cache."""
    first = add_building(world.primary, 0)
    added: list[int] = [first]
    app = create_app(world.settings("r2", read_replica_wait_ms=wait_ms))
    try:
        wait_for(world.url("r2"), first)
        with TestClient(app) as client:
            reads = app.state.reads
            ids, etag0 = tile_ids(client)
            assert ids == primary_ids(world) and first in ids
            on_replica, behind = reads.stats.replica, reads.stats.primary_behind

            second = add_building(world.primary, 40)
            added.append(second)
            assert not replica_has(world.url("r2"), second)  # r2 is behind, as meant
            seen: list[tuple[set[int], str]] = []
            t0 = time.monotonic()
            while time.monotonic() - t0 < DELAY_MS / 1000 + 1:
                seen.append(tile_ids(client))
            assert seen[0][1] != etag0  # a new version, so a new ETag and cache key
            want = primary_ids(world)
            assert second in want
            for ids, etag in seen:
                assert etag == seen[0][1]
                assert ids == want, "a tile without the write under the version after it"
            cached = [k for k in app.state.tiles._lru if k == seen[0][1].strip('"')]
            assert cached, "the tile was cached under its version"
            if wait_ms < DELAY_MS:
                assert reads.stats.primary_behind == behind + 1  # built on the primary
                assert reads.stats.replica == on_replica
            else:
                assert reads.stats.primary_behind == behind  # waited for r2, built there
                assert reads.stats.replica == on_replica + 1
    finally:
        sql(world.primary, "DELETE FROM twin.building WHERE id = ANY(%s)", (added,))
        sql(world.primary, "UPDATE twin.layer_version SET version = version + 1"
                           " WHERE layer = 'building'")  # fmt: skip


def test_a_replica_going_down_takes_nothing_with_it(world: World) -> None:
    """r1's postmaster is stopped mid-test: tiles, features and cells still answer 200 with
    the primary's content; once it is back, reads return to it."""
    app = create_app(world.settings("r1"))
    replicas = ReplicaSet(world.cluster)
    r1 = next(r for r in replicas.load() if r.name == "r1")
    state = world.cluster.load()
    assert state is not None
    added: list[int] = []
    try:
        with TestClient(app) as client:
            reads = app.state.reads
            added.append(add_building(world.primary, 80))
            wait_for(world.url("r1"), added[-1])
            assert tile_ids(client)[0] == primary_ids(world)
            assert reads.stats.replica >= 1 and reads.stats.failures == 0

            world.cluster._run(
                [str(Path(state.bindir) / "pg_ctl"), "-D", r1.pgdata, "-m", "immediate", "stop"]
            )
            for dx in (120, 160):
                added.append(add_building(world.primary, dx))  # a new version: a cache miss
                ids, _ = tile_ids(client)
                assert ids == primary_ids(world) and added[-1] in ids
                items = client.get("/collections/buildings/items", params={"limit": 1000})
                assert items.status_code == 200, items.text
                assert set(added) <= {f["id"] for f in items.json()["features"]}
                cells = client.get("/api/cells", params={"bbox": f"{LON},{LAT},{LON + 0.01},"
                                                                 f"{LAT + 0.01}"})  # fmt: skip
                assert cells.status_code == 200, cells.text
            assert reads.stats.failures >= 1
            assert not reads.replicas[0].healthy or reads.replicas[0].last_error

            replicas.start()  # back; after read_replica_retry_s reads return to it
            wait_for(world.url("r1"), added[-1])
            time.sleep(1.2)
            before = reads.stats.replica
            deadline = time.monotonic() + 20
            while reads.stats.replica == before and time.monotonic() < deadline:
                r = client.get("/collections/buildings/items", params={"limit": 1})
                assert r.status_code == 200, r.text
                time.sleep(0.2)
            assert reads.stats.replica > before
    finally:
        replicas.start()
        sql(world.primary, "DELETE FROM twin.building WHERE id = ANY(%s)", (added,))
