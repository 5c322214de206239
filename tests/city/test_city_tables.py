"""The table lists of a city load (twin/city/load.py) against the migrated database's catalog
(pg_class, pg_constraint, pg_attribute): an independent source, not the models they use."""

from __future__ import annotations

import psycopg

from twin.city.load import CITY_TABLES, IDENTITY_TABLES

#: Tables a city load keeps, each with its reason (every other table is city data).
KEPT = {
    "app_user": "users outlive the city",
    "audit_log": "the audit trail is never truncated",
    "city_meta": "the city's name, centre and CRS, recorded at its first ingest",
    "layer_version": "tile cache versions: bumped by the load, never reset",
    "risk_snapshot": "emptied all the same: it references admin_area (TRUNCATE ... CASCADE)",
    "observation_detached": "the record of daily partitions detached past the retention",
    "sense_dead_letter": "SensorThings messages that failed, kept for review",
    "sense_device": "devices and gateways outlive the city (their tokens and passwords)",
    "sense_device_datastream": "emptied all the same: it references sensor (TRUNCATE ... CASCADE)",
    "sta_feature": "SensorThings entities created over the API",
    "sta_historical_location": "SensorThings entities created over the API",
    "sta_location": "SensorThings entities created over the API",
    "sta_observed_property": "SensorThings entities created over the API",
    "sta_sensor": "SensorThings entities created over the API",
    "sta_thing": "SensorThings entities created over the API",
    "sta_thing_location": "SensorThings entities created over the API",
}


def _tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'twin' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
        " AND c.relname <> 'alembic_version'"
    ).fetchall()
    return {r[0] for r in rows}


def test_every_table_is_city_data_or_kept(conn: psycopg.Connection) -> None:
    tables = _tables(conn)
    assert len(set(CITY_TABLES)) == len(CITY_TABLES)
    assert set(CITY_TABLES) | set(KEPT) == tables
    assert set(CITY_TABLES) & set(KEPT) == set()


def test_truncating_the_city_empties_no_kept_table(conn: psycopg.Connection) -> None:
    """TRUNCATE ... CASCADE also empties the tables referencing a city table: only snapshots
    and devices' datastream grants (the sensors they name are gone)."""
    rows = conn.execute(
        "SELECT DISTINCT src.relname, dst.relname FROM pg_constraint k"
        " JOIN pg_class src ON src.oid = k.conrelid JOIN pg_class dst ON dst.oid = k.confrelid"
        " JOIN pg_namespace n ON n.oid = src.relnamespace"
        " WHERE k.contype = 'f' AND n.nspname = 'twin'"
    ).fetchall()
    emptied = {src for src, dst in rows if dst in CITY_TABLES and src not in CITY_TABLES}
    assert emptied == {"risk_snapshot", "sense_device_datastream"}


def test_identity_tables_are_the_city_tables_with_an_identity_id(
    conn: psycopg.Connection,
) -> None:
    rows = conn.execute(
        "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'twin' AND a.attname = 'id' AND a.attidentity <> ''"
    ).fetchall()
    assert set(IDENTITY_TABLES) == {r[0] for r in rows} & set(CITY_TABLES)
    assert list(IDENTITY_TABLES) == [t for t in CITY_TABLES if t in IDENTITY_TABLES]
