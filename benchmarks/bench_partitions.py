"""Partitions (migration 0023): the in-place conversion, a one-district count, and a retention
detach while a writer keeps inserting.

On a fresh database at 0022 (private cluster or TWIN_DATABASE_URL): ``--districts`` districts,
each with a grid patch and ``--buildings`` buildings, ``--persons`` residents spread over them,
``--events`` events over the last 24 months; the upgrade to head is timed (every row copied
once). Then ``count(*)`` of one district's residents by ``district_id`` (one partition) against
the count through home buildings (how the cockpit counts today), medians of ``--repeat`` runs;
then ``history.detach`` of the months past a 180-day retention while another connection
inserts one event at a time into the current month, reporting the detach time, the rows
detached and the writer's slowest insert during it.

    .venv/bin/python benchmarks/bench_partitions.py --persons 500000 --events 200000
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from twin.db import history
from twin.db.engine import database_url
from twin.db.migrate import upgrade
from twin.settings import Settings

COUNT_BY_KEY = "SELECT count(*) FROM twin.person WHERE district_id = %s"
COUNT_BY_HOME = (
    "SELECT count(*) FROM twin.person p JOIN twin.building b ON b.id = p.home_building_id"
    " JOIN twin.admin_area g ON g.id = b.area_id WHERE g.parent_id = %s"
)


def fresh_db_at(revision: str) -> tuple[str, str]:
    base = database_url(Settings())
    admin = base.rsplit("/", 1)[0] + "/postgres"
    name = f"twin_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = base.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    upgrade(url, revision)
    return admin, url


def populate(url: str, args: argparse.Namespace) -> list[int]:
    with psycopg.connect(url) as c:
        c.execute(
            "INSERT INTO twin.admin_area (level, code, name, geom)"
            " VALUES ('city', 'c', 'c', ST_Multi(ST_MakeEnvelope(0, 0, 1, 1, 4326)))"
        )
        top = c.execute("SELECT id FROM twin.admin_area WHERE code = 'c'").fetchone()
        assert top is not None
        districts = []
        for k in range(args.districts):
            d = c.execute(
                "INSERT INTO twin.admin_area (level, code, name, parent_id, geom)"
                " VALUES ('district', %s, %s, %s, ST_Multi(ST_MakeEnvelope(0, 0, 1, 1, 4326)))"
                " RETURNING id",
                (f"d{k}", f"d{k}", top[0]),
            ).fetchone()
            assert d is not None
            c.execute(
                "WITH g AS (INSERT INTO twin.admin_area (level, code, name, parent_id, geom)"
                " VALUES ('grid', %s, %s, %s, ST_Multi(ST_MakeEnvelope(0, 0, 1, 1, 4326)))"
                " RETURNING id)"
                " INSERT INTO twin.building (use, area_id, geom) SELECT 'residential', g.id,"
                " ST_Multi(ST_MakeEnvelope(0, 0, 1, 1, 4326)) FROM g, generate_series(1, %s)",
                (f"g{k}", f"g{k}", d[0], args.buildings),
            )
            districts.append(int(d[0]))
        c.execute(
            "INSERT INTO twin.person (home_building_id, age_band, resident_type)"
            " SELECT lo + g %% n, '25-44', 'registered' FROM generate_series(1, %s) g,"
            " (SELECT min(id) AS lo, count(*) AS n FROM twin.building) b",
            (args.persons,),
        )
        c.execute(
            "INSERT INTO twin.event (type, source, occurred_at, geom) SELECT 'flood', 'hotline',"
            " now() - (g::float / %s) * interval '730 days', ST_SetSRID(ST_MakePoint(0, 0), 4326)"
            " FROM generate_series(1, %s) g ORDER BY 3",
            (args.events, args.events),
        )
        c.commit()
        c.execute("ANALYZE")
    return districts


def median_ms(c: psycopg.Connection, q: str, arg: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        c.execute(q, (arg,)).fetchone()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 2)


def writer(url: str, stop: threading.Event, lat: list[float]) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        while not stop.is_set():
            t = time.perf_counter()
            c.execute(
                "INSERT INTO twin.event (type, source, occurred_at, geom) VALUES ('w', 'sensor',"
                " now(), ST_SetSRID(ST_MakePoint(0, 0), 4326))"
            )
            lat.append((time.perf_counter() - t) * 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--districts", type=int, default=8)
    ap.add_argument("--buildings", type=int, default=200)
    ap.add_argument("--persons", type=int, default=500_000)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    admin, url = fresh_db_at("0022_comment_paths")
    out: dict[str, object] = vars(args).copy()
    try:
        districts = populate(url, args)
        t = time.perf_counter()
        upgrade(url)
        out["upgrade_s"] = round(time.perf_counter() - t, 2)
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("ANALYZE")
            d = districts[0]
            assert c.execute(COUNT_BY_KEY, (d,)).fetchone() == c.execute(
                COUNT_BY_HOME, (d,)).fetchone()  # fmt: skip
            out["count_by_district_ms"] = median_ms(c, COUNT_BY_KEY, d, args.repeat)
            out["count_by_home_ms"] = median_ms(c, COUNT_BY_HOME, d, args.repeat)
            stop, lat = threading.Event(), []
            w = threading.Thread(target=writer, args=(url, stop, lat))
            w.start()
            time.sleep(1.0)
            before = len(lat)
            t = time.perf_counter()
            done = history.detach(c, "event", today=datetime.now(UTC).date(), retention_days=180)
            out["detach_s"] = round(time.perf_counter() - t, 2)
            during = lat[before:]
            stop.set()
            w.join()
            out["detached_partitions"] = len(done)
            out["detached_rows"] = sum(done.values())
            out["writer_inserts_during_detach"] = len(during)
            out["writer_max_ms_during_detach"] = round(max(during), 1) if during else None
            out["writer_median_ms"] = round(statistics.median(lat), 2)
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(url.rsplit("/", 1)[1])))  # fmt: skip
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
