"""Readers during an ingest never see a half-loaded layer.

`twin ingest buildings --replace` (the real command, in a subprocess) swaps the tiny city's
buildings for a few thousand new ones while readers keep counting the layer: directly in SQL on
their own connections, and through the API's OGC Features ``numberMatched``. Each must only
ever see the old layer or the whole new one (count, addresses and data version together), and
must keep being answered while the load runs (no lock makes them wait for it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import shapely
from fastapi.testclient import TestClient

from twin.api.app import create_app
from twin.settings import Settings

N_NEW = 4000

SNAPSHOT_SQL = (
    "SELECT (SELECT count(*) FROM twin.building),"
    " (SELECT count(*) FROM twin.address WHERE building_id IS NOT NULL),"
    " (SELECT version FROM twin.layer_version WHERE layer = 'building')"
)


def _new_buildings(url: str, path: Path) -> None:
    """N_NEW small footprints on a grid over the city's extent, as GeoParquet."""
    with psycopg.connect(url) as c:
        row = c.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
            " FROM (SELECT ST_Extent(geom) AS e FROM twin.building) x"
        ).fetchone()
    assert row is not None
    x0, y0, x1, y1 = row
    side = int(np.ceil(np.sqrt(N_NEW)))
    xs, ys = np.meshgrid(np.linspace(x0, x1, side), np.linspace(y0, y1, side))
    xs, ys = xs.ravel()[:N_NEW], ys.ravel()[:N_NEW]
    d = 0.00005  # about 5 m
    geoms = shapely.box(xs, ys, xs + d, ys + d)
    gdf = gpd.GeoDataFrame(
        {"bid": [f"n{i}" for i in range(N_NEW)], "h": np.full(N_NEW, 12.0)},
        geometry=geoms,
        crs="EPSG:4326",
    )
    gdf.to_parquet(path)


def test_readers_see_the_old_layer_or_the_whole_new_one(city: Settings, tmp_path: Path) -> None:
    url = city.database_url
    assert url is not None
    path = tmp_path / "new_buildings.parquet"
    _new_buildings(url, path)
    with psycopg.connect(url) as c:
        old = c.execute(SNAPSHOT_SQL).fetchone()
    assert old is not None and 0 < old[0] != N_NEW and old[0] == old[1]

    seen: list[tuple[float, float, tuple[int, int, int]]] = []  # start, end, snapshot
    api_seen: list[tuple[float, float, int]] = []
    lock = threading.Lock()
    stop = threading.Event()
    failures: list[BaseException] = []

    def sql_reader() -> None:
        try:
            with psycopg.connect(url, autocommit=True) as c:
                while not stop.is_set():
                    t = time.monotonic()
                    row = c.execute(SNAPSHOT_SQL).fetchone()
                    assert row is not None
                    with lock:
                        seen.append((t, time.monotonic(), (row[0], row[1], row[2])))
                    time.sleep(0.01)
        except BaseException as exc:
            failures.append(exc)

    def api_reader(client: TestClient) -> None:
        try:
            while not stop.is_set():
                t = time.monotonic()
                r = client.get("/collections/buildings/items", params={"limit": 1})
                assert r.status_code == 200, r.text
                with lock:
                    api_seen.append((t, time.monotonic(), r.json()["numberMatched"]))
                time.sleep(0.01)
        except BaseException as exc:
            failures.append(exc)

    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(TWIN_DATABASE_URL=url, TWIN_DATA_DIR=str(city.data_dir))
    with TestClient(create_app(city)) as client:
        threads = [threading.Thread(target=sql_reader) for _ in range(2)]
        threads.append(threading.Thread(target=api_reader, args=(client,)))
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)
            started = time.monotonic()
            r = subprocess.run(
                [sys.executable, "-m", "twin", "ingest", "buildings", str(path), "--replace",
                 "--id-field", "bid", "--height-field", "h", "--json"],
                env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            finished = time.monotonic()
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not failures, failures

    with psycopg.connect(url) as c:
        new = c.execute(SNAPSHOT_SQL).fetchone()
    assert new is not None and new[0] == new[1] == N_NEW and new[2] > old[2]
    snapshots = {s for _, _, s in seen}
    assert snapshots == {old, new}, f"a half-loaded layer was seen: {snapshots - {old, new}}"
    assert {n for _, _, n in api_seen} == {old[0], new[0]}
    # The readers were answered all along the load, not held up until it committed.
    during = [e - s for s, e, _ in seen if s > started and e < finished]
    assert len(during) >= 20, f"only {len(during)} reads while the ingest ran"
    assert max(during) < 2.0, max(during)
    assert any(s > started and n == old[0] for s, _, n in api_seen if s < finished)
