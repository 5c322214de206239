from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from twin.city.demo import build_demo
from twin.settings import Settings

TABLES = ("building", "address", "parcel", "parcel_cell", "road_node", "road_link", "event",
          "person", "hazard_site", "raster_asset", "cell_stats", "layer_version", "audit_log")  # fmt: skip


def state(url: str) -> dict[str, str]:
    """A fingerprint of every table an ingest may touch: row count and content hash."""
    out = {}
    with psycopg.connect(url) as c:
        for t in TABLES:
            row = c.execute(
                sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {} x"
                ).format(sql.Identifier("twin", t))
            ).fetchone()
            out[t] = f"{row[0]}:{row[1]}" if row else ""
    return out


@pytest.fixture
def city(make_database: Callable[..., str], tmp_path: Path) -> Settings:
    """A fresh database holding the tiny demo city; settings point at it."""
    url = make_database("twin_ingest")
    settings = Settings(_env_file=None, database_url=url, data_dir=tmp_path / "data")
    build_demo(settings, size="tiny", seed=4)
    return settings


@pytest.fixture
def empty(make_database: Callable[..., str], tmp_path: Path) -> Settings:
    from twin.db.migrate import upgrade

    url = make_database("twin_ingest_empty")
    upgrade(url)
    return Settings(_env_file=None, database_url=url, data_dir=tmp_path / "data")
