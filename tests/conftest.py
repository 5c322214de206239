"""Fixtures: a real PostGIS database for the whole session, never a mock.

The database is ``TWIN_DATABASE_URL`` when set, otherwise the checkout's private cluster
(started here if it is not running, and stopped again at the end if we started it). Each session
works in a fresh database created for it and dropped afterwards. If no database can be reached the
tests fail: they do not skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from twin.api.app import create_app
from twin.db.engine import libpq_url, local_cluster
from twin.db.migrate import upgrade
from twin.settings import Settings

# Most tests act as callers without a token on a twin opened up as a public demo would be
# (simulations, task and alert operations, important data). The secure defaults (all closed,
# aggregates only) are what tests/api/test_classification.py and tests/test_settings.py check,
# with these variables removed.
DEMO_OPENINGS = {
    "TWIN_OPEN_SIMULATIONS": "true",
    "TWIN_OPEN_OPERATIONS": "true",
    "TWIN_PUBLIC_CLEARANCE": "important",
}
for _name, _value in DEMO_OPENINGS.items():
    os.environ.setdefault(_name, _value)


def _with_db(url: str, dbname: str) -> str:
    base, _, query = url.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{dbname}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a PostGIS server's maintenance database (``postgres``) we may create DBs on."""
    external = os.environ.get("TWIN_DATABASE_URL")
    if external:
        yield _with_db(libpq_url(external), "postgres")
        return
    cluster = local_cluster(Settings())
    state, started = cluster.start()
    yield _with_db(state.url, "postgres")
    if started and not os.environ.get("TWIN_KEEP_DB"):
        cluster.stop()


@pytest.fixture(scope="session")
def make_database(server_url: str) -> Iterator[object]:
    """Factory: a fresh empty database with PostGIS; all are dropped at session end."""
    created: list[str] = []

    def make(prefix: str = "twin_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        url = _with_db(server_url, name)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        return url

    yield make
    with psycopg.connect(server_url, autocommit=True) as conn:
        for name in created:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def db_url(make_database) -> str:  # type: ignore[no-untyped-def]
    """A database migrated to head, shared by the session (tests roll back what they write)."""
    url: str = make_database()
    upgrade(url)
    return url


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    """A connection in a transaction that is rolled back after the test."""
    with psycopg.connect(db_url) as c:
        yield c
        c.rollback()


@pytest.fixture(scope="session")
def tiny_demo(make_database, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A whole tiny demo twin, built once per session by the real command
    (`twin demo --size tiny --no-serve`): city, a 10-minute design storm, the traffic runs, the
    risk one map, alerts and the dispatched tasks. Tests that use it must not depend on being
    alone: the web-map and notebook tests add runs and move tasks."""
    import subprocess
    import sys

    url: str = make_database("twin_tiny_demo")
    data = tmp_path_factory.mktemp("tiny-demo-data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(TWIN_DATABASE_URL=url, TWIN_DATA_DIR=str(data))
    r = subprocess.run(
        [sys.executable, "-m", "twin", "demo", "--size", "tiny", "--seed", "3", "--no-serve",
         "--storm-duration", "10min", "--json"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return {"url": url, "data_dir": str(data)}


@pytest.fixture(scope="module")
def tiny_settings(tiny_demo: dict[str, str]) -> Settings:
    """Settings pointing at the shared tiny demo twin."""
    from pathlib import Path

    return Settings(
        _env_file=None, database_url=tiny_demo["url"], data_dir=Path(tiny_demo["data_dir"])
    )


@pytest.fixture(scope="module")
def tiny_client(tiny_settings: Settings) -> Iterator[TestClient]:
    """The API on the tiny demo twin, its lifespan run (pools and the version reader open)."""
    with TestClient(create_app(tiny_settings)) as c:
        yield c
