"""/healthz through the real app against the real database, and every way it can be unwell.

The status is for anyone; versions, schema and the reason of a 503 only for operators (the
operator's view: tests/api/test_edge.py), so here every unwell case says just that."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from twin.access.tokens import add_user
from twin.api.app import create_app
from twin.db.migrate import head_revision
from twin.settings import Settings


def _app(**kw: object) -> TestClient:
    return TestClient(create_app(Settings(_env_file=None, pool_timeout_s=2, **kw)))  # type: ignore[arg-type]


def test_healthz_ok_against_the_real_database(db_url: str) -> None:
    with psycopg.connect(db_url) as c:
        row = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'postgis'").fetchone()
        assert row is not None
        postgis = row[0]
        user, token = add_user(c, "health_operator", "operator")
        c.commit()
    try:
        with _app(database_url=db_url) as client:
            anonymous = client.get("/healthz")
            r = client.get("/healthz", headers={"Authorization": f"Bearer {token}"})
    finally:
        with psycopg.connect(db_url) as c:
            c.execute("DELETE FROM twin.app_user WHERE id = %s", (user["id"],))
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "ok"}
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert body["database"]["reachable"] is True
    assert body["database"]["postgis"] == postgis
    assert (
        body["database"]["schema_revision"]
        == head_revision()
        == body["database"]["expected_revision"]
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens


def test_stopped_database_gives_503_with_a_clear_body() -> None:
    url = f"postgresql://twin@127.0.0.1:{_closed_port()}/twin"
    with _app(database_url=url) as client:
        r = client.get("/healthz")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert r.json() == {"status": "unavailable"}


def test_unmigrated_database_says_to_migrate(make_database: Callable[..., str]) -> None:
    url = make_database("twin_bare")
    with _app(database_url=url) as client:
        r = client.get("/healthz")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable"}


def test_no_database_configured(tmp_path: Path) -> None:
    with _app(data_dir=tmp_path / "empty") as client:
        r = client.get("/healthz")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable"}


def test_openapi_and_docs(db_url: str) -> None:
    with _app(database_url=db_url) as client:
        spec = client.get("/openapi.json").json()
        assert "/healthz" in spec["paths"]
        assert client.get("/docs").status_code == 200
        assert client.get("/no/such/route").status_code == 404
