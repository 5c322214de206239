"""Migration 0023_partitions converts a populated twin in place: a database at 0022 gets
residents (with and without a home), events over decades (and ahead), tasks on them, task
transitions and audit rows; after the upgrade every table has the same rows (count and md5 of
its rows in id order, over the columns it had at 0022), the rows sit in the partitions their
keys name, ids go on from where they were, and the downgrade gives the same rows back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from twin.db.migrate import downgrade, upgrade

BEFORE = "0022_comment_paths"
TABLES = ("person", "event", "task", "task_transition", "audit_log")


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'twin'"
        " AND table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _sums(conn: psycopg.Connection, cols: dict[str, list[str]]) -> dict[str, tuple[int, str]]:
    out = {}
    for table in TABLES:
        listed = sql.SQL(", ").join(sql.Identifier(c) for c in cols[table])
        row = conn.execute(
            sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(r::text, '|' ORDER BY id), ''))"
                " FROM (SELECT id, row({}) AS r FROM {}) x"
            ).format(listed, sql.Identifier("twin", table))
        ).fetchone()
        assert row is not None
        out[table] = (int(row[0]), str(row[1]))
    return out


def _populate(conn: psycopg.Connection) -> dict[str, int]:
    def one(q: str, *args: object) -> int:
        row = conn.execute(q, args).fetchone()
        assert row is not None
        return int(row[0])

    box = "ST_Multi(ST_MakeEnvelope(0, 0, 1, 1, 4326))"
    top = one(f"INSERT INTO twin.admin_area (level, code, name, geom) VALUES"
              f" ('city', 'm-c', 'c', {box}) RETURNING id")  # fmt: skip
    ids = {"city": top}
    for k in ("a", "b"):
        d = one(f"INSERT INTO twin.admin_area (level, code, name, parent_id, geom) VALUES"
                f" ('district', %s, %s, %s, {box}) RETURNING id", f"m-{k}", k, top)  # fmt: skip
        g = one(f"INSERT INTO twin.admin_area (level, code, name, parent_id, geom) VALUES"
                f" ('grid', %s, %s, %s, {box}) RETURNING id", f"m-{k}-g", k, d)  # fmt: skip
        b = one(f"INSERT INTO twin.building (use, area_id, geom) VALUES ('residential', %s,"
                f" {box}) RETURNING id", g)  # fmt: skip
        ids |= {k: d, f"{k}_grid": g, f"{k}_building": b}
    cell = 0x8928308280FFFFF
    conn.execute("INSERT INTO twin.admin_area_cell (area_id, res, cell, share) VALUES"
                 " (%s, 9, %s, 1.0)", (ids["b_grid"], cell))  # fmt: skip
    ids["cell"] = cell
    conn.execute(
        "INSERT INTO twin.person (home_building_id, age_band, resident_type, home_cell)"
        " SELECT CASE g %% 4 WHEN 0 THEN %s WHEN 1 THEN %s END, '25-44', 'registered',"
        " CASE WHEN g %% 4 = 2 THEN %s END FROM generate_series(1, 200) g",
        (ids["a_building"], ids["b_building"], cell),
    )
    now = datetime.now(UTC)
    stamps = [now - timedelta(days=d) for d in (0, 1, 40, 200, 700, 9000)] + [
        now + timedelta(days=400)
    ]
    for k, t in enumerate(stamps * 5):
        conn.execute(
            "INSERT INTO twin.event (type, source, occurred_at, area_id, attrs, geom) VALUES"
            " ('flood', 'hotline', %s, %s, %s, ST_SetSRID(ST_MakePoint(0.5, 0.5), 4326))",
            (t, ids["a"] if k % 2 else ids["b"], f'{{"k": {k}}}'),
        )
    first_event = one("SELECT min(id) FROM twin.event")
    task = one("INSERT INTO twin.task (title, area_id, event_id) VALUES ('t', %s, %s)"
               " RETURNING id", ids["a"], first_event)  # fmt: skip
    for k, t in enumerate(stamps):
        conn.execute(
            "INSERT INTO twin.task_transition (task_id, from_state, to_state, at) VALUES"
            " (%s, 'open', 'accepted', %s)",
            (task, t),
        )
        conn.execute(
            "INSERT INTO twin.audit_log (at, action, resource, area_id, client, detail) VALUES"
            " (%s, 'read', 'person', %s, '10.0.0.1', %s)",
            (t, ids["a"], f'{{"n": {k}}}'),
        )
    return ids


@pytest.fixture(scope="module")
def migrated(make_database: Callable[..., str]) -> dict[str, object]:
    url: str = make_database("twin_p23")
    upgrade(url, BEFORE)
    with psycopg.connect(url) as conn:
        ids = _populate(conn)
        conn.commit()
        cols = {t: _columns(conn, t) for t in TABLES}
        sums = _sums(conn, cols)
        last = {t: conn.execute(sql.SQL("SELECT max(id) FROM {}").format(
            sql.Identifier("twin", t))).fetchone() for t in TABLES}  # fmt: skip
    upgrade(url)
    return {"url": url, "ids": ids, "cols": cols, "sums": sums, "last": last}


def test_every_row_is_kept(migrated: dict[str, object]) -> None:
    with psycopg.connect(str(migrated["url"])) as conn:
        assert _sums(conn, migrated["cols"]) == migrated["sums"]  # type: ignore[arg-type]
        kinds = dict(conn.execute(
            "SELECT c.relname, c.relkind FROM pg_class c WHERE c.relnamespace = 'twin'::regnamespace"
            " AND c.relname = ANY (%s)", (list(TABLES),)).fetchall())  # fmt: skip
    assert kinds == {"person": "p", "event": "p", "task": "r", "task_transition": "p",
                     "audit_log": "p"}  # fmt: skip


def test_rows_sit_in_the_partitions_their_keys_name(migrated: dict[str, object]) -> None:
    ids: dict[str, int] = migrated["ids"]  # type: ignore[assignment]
    with psycopg.connect(str(migrated["url"])) as conn:
        placed = dict(
            conn.execute(
                "SELECT tableoid::regclass::text, count(*) FROM twin.person GROUP BY 1"
            ).fetchall()
        )
        districts = dict(conn.execute(
            "SELECT home_building_id IS NULL AND home_cell IS NULL, array_agg(DISTINCT"
            " district_id) FROM twin.person GROUP BY 1").fetchall())  # fmt: skip
        months = conn.execute(
            "SELECT count(DISTINCT tableoid), bool_and(tableoid::regclass::text LIKE"
            " 'twin_part.event_%%') FROM twin.event").fetchone()  # fmt: skip
        spots = dict(
            conn.execute(
                "SELECT tableoid::regclass::text, count(*) FROM twin.event"
                " WHERE tableoid::regclass::text ~ '_(before|after)$' GROUP BY 1"
            ).fetchall()
        )
    assert placed == {f"twin_part.person_d{ids['a']}": 50,
                      f"twin_part.person_d{ids['b']}": 100,  # 50 by building, 50 by cell
                      "twin_part.person_default": 50}  # fmt: skip
    assert districts[True] == [0]
    assert months is not None and months[0] >= 4 and months[1]
    assert spots == {"twin_part.event_before": 10, "twin_part.event_after": 5}


def test_references_and_identities_go_on(migrated: dict[str, object]) -> None:
    last: dict[str, tuple[int]] = migrated["last"]  # type: ignore[assignment]
    with psycopg.connect(str(migrated["url"])) as conn:
        task = conn.execute("SELECT event_id FROM twin.task").fetchone()
        assert task is not None and task[0] is not None
        row = conn.execute(
            "INSERT INTO twin.event (type, source, occurred_at, geom) VALUES ('x', 'import',"
            " now(), ST_SetSRID(ST_MakePoint(0, 0), 4326)) RETURNING id"
        ).fetchone()
        assert row is not None and row[0] > last["event"][0]
        conn.execute("DELETE FROM twin.event WHERE id = %s", (task[0],))
        assert conn.execute("SELECT event_id FROM twin.task").fetchone() == (None,)
        conn.rollback()


def test_downgrade_gives_the_rows_back(
    migrated: dict[str, object], make_database: Callable[..., str]
) -> None:
    url = str(migrated["url"])
    downgrade(url, BEFORE)
    try:
        with psycopg.connect(url) as conn:
            assert _sums(conn, migrated["cols"]) == migrated["sums"]  # type: ignore[arg-type]
            fk = conn.execute(
                "SELECT count(*) FROM pg_constraint WHERE conname = 'fk_task_event_id_event'"
            ).fetchone()
            assert fk == (1,)
    finally:
        upgrade(url)
