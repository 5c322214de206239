"""Migrations: empty database -> head, no drift from the models, down and up again identical."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from twin.db.migrate import current_revision, downgrade, head_revision, migration_engine, upgrade
from twin.db.models import SCHEMA, metadata

# Every table of DESIGN.md section 3 (results split into per-kind tables; tasks keep history).
DESIGN_TABLES = {
    "admin_area",
    "address",
    "building",
    "parcel",
    "person",
    "enterprise",
    "event",
    "road_node",
    "road_link",
    "poi",
    "hazard_site",
    "sensor",
    "observation",
    "raster_asset",
    "cell_stats",
    "sim_run",
    "flood_cell_result",
    "flood_link_result",
    "flood_building_result",
    "traffic_link_result",
    "traffic_cell_result",
    "risk_score",
    "alert",
    "task",
    "task_transition",
    "app_user",
    "audit_log",
}


def _diff(url: str) -> list[Any]:
    engine = migration_engine(url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": True,
                "include_name": lambda n, t, p: n == SCHEMA if t == "schema" else True,
                "compare_type": True,
                "compare_server_default": True,
                "version_table_schema": SCHEMA,
            },
        )
        diff = compare_metadata(ctx, metadata)
    engine.dispose()
    return diff


def _schema_snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Columns, constraints, indexes and functions of schema twin, straight from the catalogs."""
    with psycopg.connect(url) as c:
        return {
            "columns": c.execute(
                "SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default,"
                " is_generated, generation_expression FROM information_schema.columns"
                " WHERE table_schema = 'twin' ORDER BY 1, 2"
            ).fetchall(),
            "constraints": c.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
                " FROM pg_constraint"
                " WHERE connamespace = 'twin'::regnamespace ORDER BY 1, 2"
            ).fetchall(),
            "indexes": c.execute(
                "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'twin'"
                " ORDER BY 1, 2"
            ).fetchall(),
            "functions": c.execute(
                "SELECT proname, pg_get_functiondef(oid) FROM pg_proc"
                " WHERE pronamespace = 'twin'::regnamespace ORDER BY 1"
            ).fetchall(),
            "geometry_columns": c.execute(
                "SELECT f_table_name, f_geometry_column, type, srid FROM geometry_columns"
                " WHERE f_table_schema = 'twin' ORDER BY 1, 2"
            ).fetchall(),
        }


def test_empty_to_head_without_drift(make_database: Callable[..., str]) -> None:
    url = make_database("twin_mig")
    assert upgrade(url) == head_revision()
    assert _diff(url) == []
    with psycopg.connect(url) as c:
        tables = {
            r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'twin'")
        }
    assert tables >= DESIGN_TABLES


def test_fresh_and_downgraded_then_upgraded_are_identical(
    make_database: Callable[..., str],
) -> None:
    fresh = make_database("twin_mig")
    upgrade(fresh)
    cycled = make_database("twin_mig")
    upgrade(cycled)
    downgrade(cycled, "base")
    with migration_engine(cycled).connect() as conn:
        assert current_revision(conn) is None
        left = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'twin' "
                "AND tablename <> 'alembic_version'"
            )
        ).scalar()
        assert left == 0
    upgrade(cycled)
    assert _schema_snapshot(fresh) == _schema_snapshot(cycled)


def test_every_spatial_table_has_gist_indexes_and_a_3857_copy(db_url: str) -> None:
    snap = _schema_snapshot(db_url)
    geo = {(t, c): (typ, srid) for t, c, typ, srid in snap["geometry_columns"]}
    gist = {(t, d) for t, _, d in snap["indexes"] if "USING gist" in d}
    for (table, column), (_typ, srid) in geo.items():
        assert any(t == table and f"({column})" in d for t, d in gist), (
            f"{table}.{column} lacks GiST"
        )
        if column == "geom":
            assert srid == 4326
    tile_tables = {
        "admin_area",
        "address",
        "building",
        "parcel",
        "enterprise",
        "event",
        "road_node",
        "road_link",
        "poi",
        "hazard_site",
        "sensor",
        "cell_stats",
    }
    for table in tile_tables:
        assert geo[(table, "geom_3857")][1] == 3857, table
    generated = {(t, c) for t, c, *_rest, gen, _expr in snap["columns"] if gen == "ALWAYS"}
    assert {(t, "geom_3857") for t in tile_tables} <= generated
