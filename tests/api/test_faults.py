"""The real server through a database restart: no hangs, 503 (never 500), recovery on its own,
and nothing acknowledged is lost.

The shared test cluster must not be restarted, so these tests start a throwaway cluster of their
own (a few seconds) with a minimal twin: the migrated schema and one district to dispatch tasks
to. The server is `twin serve` in a subprocess, reached over HTTP by plain threads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.services import free_port
from twin.db.cluster import LocalCluster
from twin.db.migrate import upgrade
from twin.runs import store

from .test_tiles import tile_of

pytestmark = pytest.mark.cluster

POOL_TIMEOUT_S = 2.0
# Every request must end within the pool timeout plus this (connect, statement cancelled, ...).
MARGIN_S = 3.0


@dataclass
class Twin:
    cluster: LocalCluster
    url: str
    base: str
    headers: dict[str, str]  # an operator's token
    log: Path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWIN_", "PG"))}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    base_dir = tmp_path_factory.mktemp("faults")
    cluster = LocalCluster(base_dir / "pg")
    state, _ = cluster.start()
    url = state.url
    server: subprocess.Popen[bytes] | None = None
    try:
        upgrade(url)
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(
                "INSERT INTO twin.admin_area (level, code, name, geom) VALUES ('district', 'D1',"
                " 'District 1', ST_Multi(ST_MakeEnvelope(120.1, 30.2, 120.2, 30.3, 4326)))"
            )
            # A commit that fails the way a dying server fails it, for titles starting 'doomed'.
            c.execute(
                "CREATE FUNCTION twin.fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN IF NEW.title LIKE 'doomed%' THEN RAISE EXCEPTION 'lost at commit'"
                " USING ERRCODE = 'admin_shutdown'; END IF; RETURN NULL; END $$"
            )
            c.execute(
                "CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON twin.task"
                " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
                " EXECUTE FUNCTION twin.fail_at_commit()"
            )
        r = subprocess.run(
            [sys.executable, "-m", "twin", "users", "add", "faults-op", "--role", "operator",
             "--json"],
            env=_env(TWIN_DATABASE_URL=url), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        token = json.loads(r.stdout)["token"]
        port = free_port()
        log = base_dir / "serve.log"
        # Two processes: each must ride out the restart on its own (pool, version reader).
        serve = ["serve", "--port", str(port), "--workers", "2", "--log-level", "warning"]
        server = subprocess.Popen(
            [sys.executable, "-m", "twin", *serve],
            env=_env(
                TWIN_DATABASE_URL=url,
                TWIN_DATA_DIR=str(base_dir / "data"),
                TWIN_POOL_TIMEOUT_S=str(POOL_TIMEOUT_S),
                TWIN_POOL_RECONNECT_TIMEOUT_S="2",
            ),
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "twin serve did not come up"
            time.sleep(0.2)
        yield Twin(cluster, url, base, {"Authorization": f"Bearer {token}"}, log)
        text = log.read_text(errors="replace")
        assert "Exception in ASGI application" not in text, text[-5000:]
        assert "response already started" not in text, text[-5000:]
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        cluster.stop()


def _titles(url: str, prefix: str) -> set[str]:
    with psycopg.connect(url) as c:
        rows = c.execute("SELECT title FROM twin.task WHERE title LIKE %s", (prefix + "%",))
        return {r[0] for r in rows.fetchall()}


def test_a_commit_that_fails_is_never_acknowledged(twin: Twin) -> None:
    """The request's transaction commits before the answer is sent: a failed commit is a 503
    (the client knows to retry), never a 201 for a row that is not there."""
    ok = httpx.post(f"{twin.base}/api/tasks", json={"title": "kept", "area": "D1"},
                    headers=twin.headers, timeout=10)  # fmt: skip
    assert ok.status_code == 201, ok.text
    bad = httpx.post(f"{twin.base}/api/tasks", json={"title": "doomed", "area": "D1"},
                     headers=twin.headers, timeout=10)  # fmt: skip
    assert bad.status_code == 503, bad.text
    assert bad.headers["retry-after"]
    assert _titles(twin.url, "kept") == {"kept"}
    assert _titles(twin.url, "doomed") == set()


@dataclass
class Call:
    kind: str
    start: float
    end: float
    status: int  # 0: no answer (an exception, a client timeout)
    title: str = ""


def test_database_restart_under_load(twin: Twin) -> None:
    h = twin.headers
    before = httpx.post(f"{twin.base}/api/tasks", json={"title": "before-restart", "area": "D1"},
                        headers=h, timeout=10)  # fmt: skip
    assert before.status_code == 201, before.text
    task_id = before.json()["id"]
    moved = httpx.patch(f"{twin.base}/api/tasks/{task_id}", json={"state": "accepted"},
                        headers=h, timeout=10)  # fmt: skip
    assert moved.status_code == 200, moved.text

    calls: list[Call] = []
    lock = threading.Lock()
    stop = threading.Event()
    t0 = time.monotonic()
    reads = [
        ("task", f"/api/tasks/{task_id}"),
        ("tasks", "/api/tasks?limit=5"),
        ("features", "/collections/buildings/items?limit=5&bbox=120.1,30.2,120.2,30.3"),
        ("health", "/healthz"),
        # Anonymous and cached after its first read: the shared layer version reader's path.
        ("tile", "/tiles/admin_areas/10/{}/{}.mvt".format(*tile_of(120.15, 30.25, 10))),
    ]

    def reader(kind: str, path: str) -> None:
        auth = {} if kind == "tile" else h
        with httpx.Client(base_url=twin.base, headers=auth, timeout=POOL_TIMEOUT_S + 15) as client:
            while not stop.is_set():
                start = time.monotonic() - t0
                try:
                    status = client.get(path).status_code
                except httpx.HTTPError:
                    status = 0
                with lock:
                    calls.append(Call(kind, start, time.monotonic() - t0, status))
                time.sleep(0.05)

    def writer() -> None:
        n = 0
        with httpx.Client(base_url=twin.base, headers=h, timeout=POOL_TIMEOUT_S + 15) as client:
            while not stop.is_set():
                n += 1
                title = f"during-{n}"
                start = time.monotonic() - t0
                try:
                    status = client.post(
                        "/api/tasks", json={"title": title, "area": "D1", "priority": 4}
                    ).status_code
                except httpx.HTTPError:
                    status = 0
                with lock:
                    calls.append(Call("write", start, time.monotonic() - t0, status, title))
                time.sleep(0.1)

    threads = [threading.Thread(target=reader, args=r) for r in reads]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        down_at = time.monotonic() - t0
        twin.cluster.stop()
        time.sleep(1.5)
        twin.cluster.start()
        up_at = time.monotonic() - t0
        # Run on until every kind has succeeded again after the database came back.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with lock:
                back = {c.kind for c in calls if c.start > up_at and c.status in (200, 201)}
            if back == {k for k, _ in reads} | {"write"}:
                break
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(POOL_TIMEOUT_S + 20)
    assert not any(t.is_alive() for t in threads), "a client hung"

    # No request hung: each got an answer, within the pool timeout and a margin.
    assert all(c.status != 0 for c in calls), [c for c in calls if c.status == 0]
    slowest = max(c.end - c.start for c in calls)
    assert slowest < POOL_TIMEOUT_S + MARGIN_S, slowest
    # The outage was seen, and answered 503, never 500 (nor anything else).
    statuses = {c.status for c in calls}
    assert 503 in statuses, "the restart went unnoticed: no request was answered 503"
    assert statuses <= {200, 201, 503}, statuses
    outage = [c for c in calls if c.status == 503]
    assert all(c.end > down_at for c in outage), "503 before the database went down"
    # Recovery on its own, within a few seconds of the database being back.
    first_ok = min(c.end for c in calls if c.start > up_at and c.status in (200, 201))
    assert first_ok - up_at < 8.0, first_ok - up_at
    late = [c for c in calls if c.start > first_ok + 2 * POOL_TIMEOUT_S and c.status == 503]
    assert not late, f"still failing well after recovery: {late[:5]}"
    # Nothing acknowledged is lost: the write and transition before the restart, and every
    # task dispatched with a 201 during it.
    acked = {c.title for c in calls if c.kind == "write" and c.status == 201}
    assert acked, "no write succeeded"
    assert acked <= _titles(twin.url, "during-")
    with psycopg.connect(twin.url) as c:
        row = c.execute("SELECT state FROM twin.task WHERE id = %s", (task_id,)).fetchone()
    assert row == ("accepted",)
    assert httpx.get(f"{twin.base}/healthz", timeout=10).status_code == 200


def test_a_run_cut_off_by_a_restart_is_marked_failed(twin: Twin) -> None:
    """A simulation whose database goes away fails; marking it failed waits for the database
    to come back instead of leaving the run 'running' for ever."""
    with psycopg.connect(twin.url, autocommit=True) as c:
        run_id = store.create_run(c, "flood", {})
        store.start_run(c, run_id)
    twin.cluster.stop()
    restarter = threading.Timer(1.0, twin.cluster.start)
    restarter.start()
    try:
        store.fail_run(twin.url, run_id, "OperationalError: the database went away")
    finally:
        restarter.join(60)
    with psycopg.connect(twin.url) as c:
        row = c.execute("SELECT status, error FROM twin.sim_run WHERE id = %s", (run_id,))
        assert row.fetchone() == ("failed", "OperationalError: the database went away")
