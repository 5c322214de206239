"""The private cluster's lifecycle through the real `twin db` commands, and the API riding it."""

from __future__ import annotations

import json
import multiprocessing
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from twin.api.app import create_app
from twin.db.cluster import LocalCluster
from twin.db.migrate import head_revision
from twin.settings import Settings

pytestmark = pytest.mark.cluster

TWIN = [sys.executable, "-m", "twin"]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWIN_", "PG"))}
    env["TWIN_DATA_DIR"] = str(data_dir)
    return env


def twin(data_dir: Path, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    kwargs: dict[str, object] = {}
    if user is not None:
        pw = pwd.getpwnam(user)
        kwargs = {
            "user": pw.pw_uid,
            "group": pw.pw_gid,
            "extra_groups": [],
            "cwd": str(data_dir.parent),
        }
    return subprocess.run(
        [*TWIN, *args], env=_env(data_dir), capture_output=True, text=True, timeout=180, **kwargs
    )


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_lifecycle_and_health(tmp_path: Path) -> None:
    data = tmp_path / "twin-data"
    try:
        r = twin(data, "db", "status")
        assert r.returncode == 3 and "not created" in r.stdout

        r = twin(data, "db", "start", "--json")
        assert r.returncode == 0, r.stderr
        first = json.loads(r.stdout)
        assert first["started"] is True

        r = twin(data, "db", "start", "--json")  # twice is harmless
        assert r.returncode == 0, r.stderr
        second = json.loads(r.stdout)
        assert second == {**first, "started": False}

        r = twin(data, "db", "status", "--json")
        assert r.returncode == 0, r.stderr
        status = json.loads(r.stdout)
        assert status["running"] and status["accepting"]
        pid = status["pid"]
        assert _alive(pid)
        if os.geteuid() == 0:
            assert _uid(pid) != 0, "PostgreSQL must not run as root"

        url = twin(data, "db", "url").stdout.strip()
        assert url == first["url"]
        with psycopg.connect(url) as c:
            row = c.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'postgis'"
            ).fetchone()
            assert row is not None and row[0].startswith("3.")

        r = twin(data, "db", "migrate")
        assert r.returncode == 0 and head_revision() in r.stdout, r.stderr

        # This cluster's URL, even where the environment names another database.
        settings = Settings(
            _env_file=None, data_dir=data, database_url=None, pool_timeout_s=2,
            pool_reconnect_timeout_s=4,
        )  # fmt: skip
        app = create_app(settings)
        with TestClient(app) as client:
            ok = client.get("/healthz")
            assert ok.status_code == 200, ok.text
            assert ok.json() == {"status": "ok"}  # versions are for operators (test_edge.py)

            r = twin(data, "db", "stop")
            assert r.returncode == 0 and "stopped" in r.stdout
            assert not _alive(pid), "stop must leave no server process"
            r = twin(data, "db", "status")
            assert r.returncode == 3 and "stopped" in r.stdout

            down = client.get("/healthz")
            assert down.status_code == 503
            assert down.json() == {"status": "unavailable"}
            # Stay down long enough for the pool's backoff to grow past its first steps.
            for _ in range(3):
                assert client.get("/healthz").status_code == 503

            restarted = twin(data, "db", "start", "--json")
            assert restarted.returncode == 0
            assert json.loads(restarted.stdout)["port"] == first["port"]  # clients can find it
            # Same app: it recovers without a restart, within the pool's reconnect bound.
            deadline = time.monotonic() + 30
            back = client.get("/healthz")
            while back.status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.5)
                back = client.get("/healthz")
            assert back.status_code == 200, back.text

        r = twin(data, "db", "stop")
        assert r.returncode == 0
        assert twin(data, "db", "stop").stdout.strip() == "not running"
    finally:
        twin(data, "db", "stop")


def _drop_to(user: str) -> None:
    pw = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    os.environ.update(HOME=pw.pw_dir or "/", USER=user, LOGNAME=user)


def _lifecycle_child(user: str, data: str, out: Connection) -> None:
    """Runs in a forked child: drop root, then start, inspect and stop a cluster."""
    try:
        _drop_to(user)
        cluster = LocalCluster(Path(data))
        _, started = cluster.start()
        status = cluster.status()
        uid = _uid(status["pid"])
        stopped = cluster.stop()
        out.send(
            {
                "started": started,
                "uid": uid,
                "pid": status["pid"],
                "stopped": stopped,
                "euid": os.geteuid(),
                "accepting": status["accepting"],
            }
        )
    except BaseException as exc:  # report, never hang the parent
        out.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        out.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="already running as an ordinary user")
def test_lifecycle_as_an_ordinary_user() -> None:
    # The interpreter may live where an ordinary user cannot reach it (under /root), so fork:
    # the child keeps the loaded modules, drops to 'nobody' and drives the cluster itself.
    user = "nobody"
    pw = pwd.getpwnam(user)
    base = Path(tempfile.mkdtemp(prefix="twin-user-"))
    os.chmod(base, 0o755)
    os.chown(base, pw.pw_uid, pw.pw_gid)
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_lifecycle_child, args=(user, str(base / "data"), child_end))
    try:
        proc.start()
        child_end.close()
        assert parent_end.poll(120), "child did not report"
        result = parent_end.recv()
        proc.join(30)
        assert "error" not in result, result["error"]
        assert result["euid"] == pw.pw_uid
        assert result["started"] and result["accepting"] and result["stopped"]
        assert result["uid"] == pw.pw_uid  # the server ran as the ordinary user itself
        assert not _alive(result["pid"])
    finally:
        if proc.is_alive():
            proc.kill()
        shutil.rmtree(base, ignore_errors=True)
