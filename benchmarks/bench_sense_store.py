"""Storage of readings: insert rate with and without the roll-up trigger, a roll-up refresh,
partition upkeep, and a chart read from the roll-ups against the same aggregate from raw.

On a fresh database (private cluster or TWIN_DATABASE_URL): ``--datastreams`` sensors in one
H3 cell, ``--readings`` readings over two days inserted in statements of ``--batch`` rows
(``ON CONFLICT DO NOTHING``, as the bridge does); ``refresh_all`` of the queue they left; one
more batch and its refresh; ``partitions.ensure`` with nothing to do and with one new day; a
day's 5-minute chart of one datastream from ``observation_5min`` and from ``GROUP BY date_bin``
on the raw rows.

    .venv/bin/python benchmarks/bench_sense_store.py --readings 200000 --datastreams 100
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, date, datetime, timedelta

import psycopg

# benchmarks/bench_sense.py (scripts run from their folder)
from bench_sense import drop_db, fresh_db

from twin.sense import partitions, rollups

INSERT = (
    "INSERT INTO twin.observation (sensor_id, observed_at, value)"
    " SELECT s, timestamptz '2030-01-01' + (%(k)s * %(per)s + g) * %(step)s::interval, random()"
    " FROM unnest(%(ids)s::bigint[]) s, generate_series(1, %(per)s) g ON CONFLICT DO NOTHING"
)


def insert_all(c: psycopg.Connection, ids: list[int], readings: int, batch: int) -> float:
    per = max(1, batch // len(ids))
    rounds = max(1, readings // (per * len(ids)))
    step = timedelta(seconds=2 * 86400 / (rounds * per))
    t = time.perf_counter()
    for k in range(rounds):
        c.execute(INSERT, {"k": k, "per": per, "step": step, "ids": ids})
    return rounds * per * len(ids) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readings", type=int, default=200_000)
    ap.add_argument("--datastreams", type=int, default=100)
    ap.add_argument("--batch", type=int, default=2000)
    args = ap.parse_args()
    admin, url = fresh_db()
    out: dict[str, object] = {}
    try:
        with psycopg.connect(url, autocommit=True) as c:
            ids = [r[0] for r in c.execute(
                "INSERT INTO twin.sensor (code, kind, unit, cell) SELECT 'b' || g, 'rain_gauge',"
                " 'mm/h', 626740321835827199 FROM generate_series(1, %s) g RETURNING id",
                (args.datastreams,),
            ).fetchall()]  # fmt: skip
            partitions.ensure(c, today=date(2030, 1, 2), ahead_days=1)
            c.execute("ALTER TABLE twin.observation DISABLE TRIGGER rollup_touch_insert")
            out["insert_rows_per_s_without_trigger"] = round(
                insert_all(c, ids, args.readings, args.batch)
            )
            c.execute("TRUNCATE twin.observation")
            c.execute("ALTER TABLE twin.observation ENABLE TRIGGER rollup_touch_insert")
            out["insert_rows_per_s"] = round(insert_all(c, ids, args.readings, args.batch))
            out["queue_rows"] = rollups.pending(c)
            t = time.perf_counter()
            got = rollups.refresh_all(c, res=9)
            out["refresh_all_s"] = round(time.perf_counter() - t, 3)
            out["refreshed"] = got.as_dict()
            c.execute("INSERT INTO twin.observation (sensor_id, observed_at, value) SELECT s,"
                      " timestamptz '2030-01-01 12:00:01', 1 FROM unnest(%s::bigint[]) s",
                      (ids,))  # fmt: skip
            t = time.perf_counter()
            rollups.refresh(c, res=9)
            out["refresh_one_batch_ms"] = round((time.perf_counter() - t) * 1000, 1)
            for label, day in (("ensure_noop_ms", date(2030, 1, 2)),
                               ("ensure_new_day_ms", date(2030, 1, 3))):  # fmt: skip
                t = time.perf_counter()
                partitions.ensure(c, today=day, ahead_days=1)
                out[label] = round((time.perf_counter() - t) * 1000, 1)
            c.execute("ANALYZE twin.observation")
            start = datetime(2030, 1, 1, tzinfo=UTC)
            t = time.perf_counter()
            chart = rollups.series(c, datastream=ids[0], width="5min", start=start,
                                   end=start + timedelta(days=1))  # fmt: skip
            out["chart_from_rollups_ms"] = round((time.perf_counter() - t) * 1000, 2)
            t = time.perf_counter()
            raw = c.execute(
                "SELECT date_bin('5 minutes', observed_at, timestamptz '2000-01-01'), count(*),"
                " min(value), max(value), avg(value) FROM twin.observation"
                " WHERE sensor_id = %s AND observed_at >= %s AND observed_at < %s GROUP BY 1",
                (ids[0], start, start + timedelta(days=1)),
            ).fetchall()
            out["chart_from_raw_ms"] = round((time.perf_counter() - t) * 1000, 2)
            assert len(chart) == len(raw)
    finally:
        drop_db(admin, url)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
