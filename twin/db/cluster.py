"""A private PostgreSQL + PostGIS cluster for one checkout.

``twin db start`` creates it under ``<data_dir>/`` (default ``.twin/`` in the checkout) with its own
port and socket directory, so it never collides with a system server or another clone. PostgreSQL
refuses to run as root, so when the CLI runs as root the server runs as an unprivileged OS user
(``postgres`` where it exists); its files are owned by that user.

Layout under the base directory::

    cluster.json    state: port, socket dir, OS user, binaries (read by `twin db url`)
    pgdata/         the cluster (initdb)
    run/            Unix socket directory
    postgres.log    server log

When the base directory cannot be reached by the server's OS user (a checkout under ``/root``,
say), the server's files go to ``/var/tmp/twin-<hash>/`` instead and ``cluster.json`` points there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

SUPERUSER = "twin"
_REPLICATION_LINE = (
    "\n# read replicas (twin db start --replica)\nhost replication all 127.0.0.1/32 trust\n"
)
_REPLICATION_HBA = re.compile(r"(?m)^host\s+replication\s+all\s+127\.0\.0\.1/32\s+trust")
# Unix socket paths are limited to 107 bytes; leave room for "/.s.PGSQL.65535".
_MAX_SOCKET_DIR = 90


class ClusterError(RuntimeError):
    """The private cluster could not be created, started or stopped; the message says why."""


@dataclass
class ClusterState:
    """What ``cluster.json`` records about a private cluster."""

    bindir: str
    pgdata: str
    socket_dir: str
    log_file: str
    port: int
    os_user: str
    db_name: str
    version: str

    @property
    def url(self) -> str:
        """A libpq URL over TCP on the loopback (psql, psycopg and SQLAlchemy accept it)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{self.db_name}"


def find_bindir() -> Path:
    """Locate the PostgreSQL server binaries.

    Tries ``pg_config --bindir`` first (it may name a client-only install, so ``postgres`` must be
    there), then the Debian layout ``/usr/lib/postgresql/<major>/bin``, newest major first,
    preferring a major that has the PostGIS extension installed.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                [pg_config, "--bindir"], check=True, capture_output=True, text=True
            ).stdout
            candidates.append(Path(out.strip()))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    with_postgis = [p for p in debian if _postgis_control(p).is_file()]
    candidates += with_postgis + debian
    for c in candidates:
        if (c / "postgres").is_file() and (c / "initdb").is_file() and (c / "pg_ctl").is_file():
            return c
    raise ClusterError(
        "PostgreSQL server binaries not found (looked at `pg_config --bindir` and "
        "/usr/lib/postgresql/*/bin). Run `make setup`, or install them: "
        "apt-get install postgresql postgresql-<major>-postgis-3; "
        "or set TWIN_DATABASE_URL to an existing PostGIS database."
    )


def _postgis_control(bindir: Path) -> Path:
    major = bindir.parent.name
    return Path(f"/usr/share/postgresql/{major}/extension/postgis.control")


class LocalCluster:
    """Manage the private cluster rooted at ``base`` (normally ``settings.data_dir``)."""

    def __init__(
        self,
        base: Path,
        *,
        db_name: str = "twin",
        port: int | None = None,
        os_user: str | None = None,
    ) -> None:
        self.base = Path(base).resolve()
        self.state_file = self.base / "cluster.json"
        self.db_name = db_name
        self.port = port
        self.is_root = os.geteuid() == 0
        self.os_user = os_user or (self._default_os_user() if self.is_root else _current_user())

    # ------------------------------------------------------------------ public operations
    def start(self, *, timeout_s: float = 60.0) -> tuple[ClusterState, bool]:
        """Create (first time) and start the cluster, create the database and PostGIS.

        Returns the state and whether the server was started by this call (False when it was
        already running). Safe to call twice.
        """
        state = self._load_or_plan()
        if not (Path(state.pgdata) / "PG_VERSION").is_file():
            self._initdb(state)
        if self._pg_ctl_status(state):
            self._ensure_database(state)
            return state, False
        if not _port_free(state.port):
            if self.port is not None:
                raise ClusterError(f"port {state.port} is in use; choose another with TWIN_DB_PORT")
            state.port = _free_port()
        self._write_conf(state)
        self._save(state)
        proc = self._run(
            [
                str(Path(state.bindir) / "pg_ctl"),
                "-D",
                state.pgdata,
                "-l",
                state.log_file,
                "-w",
                "-t",
                str(int(timeout_s)),
                "start",
            ],
            check=False,
        )
        if proc.returncode != 0:
            raise ClusterError(
                f"pg_ctl start failed (exit {proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip()}\n"
                f"--- last lines of {state.log_file} ---\n{_tail(Path(state.log_file))}"
            )
        self._wait_accepting(state, timeout_s)
        self._ensure_database(state)
        return state, True

    def stop(self, *, timeout_s: float = 60.0) -> bool:
        """Stop the server (fast shutdown) and wait until its process is gone.

        Returns False when it was not running.
        """
        state = self.load()
        if state is None or not self._pg_ctl_status(state):
            return False
        pid = self._postmaster_pid(state)
        proc = self._run(
            [
                str(Path(state.bindir) / "pg_ctl"),
                "-D",
                state.pgdata,
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(timeout_s)),
                "stop",
            ],
            check=False,
        )
        if proc.returncode != 0:
            raise ClusterError(f"pg_ctl stop failed: {proc.stderr.strip() or proc.stdout.strip()}")
        deadline = time.monotonic() + timeout_s
        while pid is not None and _pid_alive(pid):
            if time.monotonic() > deadline:
                raise ClusterError(f"postmaster (pid {pid}) still running after stop")
            time.sleep(0.05)
        return True

    def status(self) -> dict[str, Any]:
        """The truth about the cluster: initialised, running (and accepting), where, which."""
        state = self.load()
        if state is None:
            return {"initialised": False, "running": False, "base": str(self.base)}
        running = self._pg_ctl_status(state)
        accepting = running and _accepting(state.url)
        return {
            "initialised": (Path(state.pgdata) / "PG_VERSION").is_file(),
            "running": running,
            "accepting": accepting,
            "pid": self._postmaster_pid(state) if running else None,
            "url": state.url,
            **{k: v for k, v in asdict(state).items() if k != "db_name"},
            "database": state.db_name,
        }

    def load(self) -> ClusterState | None:
        """The recorded state, or None when the cluster was never created."""
        if not self.state_file.is_file():
            return None
        try:
            return ClusterState(**json.loads(self.state_file.read_text()))
        except (ValueError, TypeError) as exc:
            raise ClusterError(
                f"{self.state_file} is unreadable ({exc}); remove it and start again"
            ) from exc

    def url(self) -> str | None:
        state = self.load()
        return state.url if state else None

    # ------------------------------------------------------------------ internals
    def _default_os_user(self) -> str:
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                return name
        raise ClusterError(
            "running as root and no unprivileged user ('postgres' or 'nobody') exists"
        )

    def _load_or_plan(self) -> ClusterState:
        state = self.load()
        if state is not None:
            if self.port is not None:
                state.port = self.port
            return state
        bindir = find_bindir()
        if not _postgis_control(bindir).is_file() and not _has_postgis_elsewhere(bindir):
            raise ClusterError(
                f"PostGIS is not installed for the PostgreSQL in {bindir}. Run `make setup`, or: "
                f"apt-get install postgresql-{bindir.parent.name}-postgis-3"
            )
        server_base = self._server_base()
        socket_dir = server_base / "run"
        if len(str(socket_dir)) > _MAX_SOCKET_DIR:
            socket_dir = Path("/tmp") / f"twin-{_digest(self.base)}"
        version = self._run([str(bindir / "postgres"), "--version"], as_server=False).stdout.strip()
        return ClusterState(
            bindir=str(bindir),
            pgdata=str(server_base / "pgdata"),
            socket_dir=str(socket_dir),
            log_file=str(server_base / "postgres.log"),
            port=self.port or _free_port(),
            os_user=self.os_user,
            db_name=self.db_name,
            version=version,
        )

    def _server_base(self) -> Path:
        """A directory the server's OS user owns and can reach: the base, or a fallback."""
        self.base.mkdir(parents=True, exist_ok=True)
        if not self.is_root:
            return self.base
        srv = self.base / "server"
        srv.mkdir(exist_ok=True)
        self._chown(srv)
        if self._run(["test", "-w", str(srv)], check=False).returncode == 0:
            return srv
        # The server user cannot traverse to the checkout (e.g. it lies under /root).
        fallback = Path("/var/tmp") / f"twin-{_digest(self.base)}"
        fallback.mkdir(mode=0o700, exist_ok=True)
        self._chown(fallback)
        return fallback

    def _chown(self, path: Path) -> None:
        if self.is_root:
            pw = pwd.getpwnam(self.os_user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _initdb(self, state: ClusterState) -> None:
        pgdata = Path(state.pgdata)
        for d in (pgdata.parent, Path(state.socket_dir)):
            d.mkdir(parents=True, exist_ok=True)
            self._chown(d)
        self._run(
            [
                str(Path(state.bindir) / "initdb"),
                "-D",
                state.pgdata,
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ],
        )
        self._save(state)

    def _write_conf(self, state: ClusterState) -> None:
        """Settings that make the cluster private (own port, socket, loopback only) and brisk."""
        Path(state.socket_dir).mkdir(parents=True, exist_ok=True)
        self._chown(Path(state.socket_dir))
        conf = "\n".join(
            [
                "# written by `twin db start`; edited on every start",
                f"port = {state.port}",
                "listen_addresses = '127.0.0.1'",
                f"unix_socket_directories = '{state.socket_dir}'",
                "max_connections = 100",
                "shared_buffers = 256MB",
                "work_mem = 32MB",
                "maintenance_work_mem = 256MB",
                # A development cluster: a crash may lose the last commits, never corrupt data.
                "synchronous_commit = off",
                # JIT costs more than it saves on short tile and card queries.
                "jit = off",
                # Read replicas (twin.db.replicas) stream the WAL; a replica stopped for a while
                # catches up from the WAL kept here.
                "wal_level = replica",
                "max_wal_senders = 10",
                "wal_keep_size = 256MB",
                # With synchronous_commit off a commit reaches the WAL file (and the replicas)
                # when the WAL writer next runs: soon, so that a replica catches up with a
                # commit within milliseconds, not 200 ms (twin.api.reads waits for that).
                "wal_writer_delay = 10ms",
                "",
            ]
        )
        conf_path = Path(state.pgdata) / "twin.conf"
        self._run(["sh", "-c", f"cat > '{conf_path}'"], input=conf)
        main_conf = Path(state.pgdata) / "postgresql.conf"
        text = self._run(["cat", str(main_conf)]).stdout
        if "include_if_exists = 'twin.conf'" not in text:
            self._run(
                ["sh", "-c", f"cat >> '{main_conf}'"], input="\ninclude_if_exists = 'twin.conf'\n"
            )
        # Read replicas copy and stream over a replication connection on the loopback (initdb's
        # pg_hba.conf has the line already; a hand-made one may not).
        hba = Path(state.pgdata) / "pg_hba.conf"
        if not _REPLICATION_HBA.search(self._run(["cat", str(hba)]).stdout):
            self._run(["sh", "-c", f"cat >> '{hba}'"], input=_REPLICATION_LINE)

    def _wait_accepting(self, state: ClusterState, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not _accepting(state.url, dbname="postgres"):
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"server did not accept connections in {timeout_s:.0f} s; see {state.log_file}"
                )
            time.sleep(0.1)

    def _ensure_database(self, state: ClusterState) -> None:
        base = f"postgresql://{SUPERUSER}@127.0.0.1:{state.port}"
        with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (state.db_name,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(state.db_name)))
        with psycopg.connect(state.url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    def _pg_ctl_status(self, state: ClusterState) -> bool:
        if not (Path(state.pgdata) / "PG_VERSION").is_file():
            return False
        proc = self._run(
            [str(Path(state.bindir) / "pg_ctl"), "-D", state.pgdata, "status"], check=False
        )
        return proc.returncode == 0

    def _postmaster_pid(self, state: ClusterState) -> int | None:
        proc = self._run(["cat", str(Path(state.pgdata) / "postmaster.pid")], check=False)
        first = proc.stdout.splitlines()[:1]
        return int(first[0]) if first and first[0].strip().isdigit() else None

    def _save(self, state: ClusterState) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
        tmp.replace(self.state_file)

    def _run(
        self,
        argv: list[str],
        *,
        check: bool = True,
        input: str | None = None,
        as_server: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as the server's OS user (dropping root when we are root)."""
        kwargs: dict[str, Any] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if as_server and self.is_root:
            pw = pwd.getpwnam(self.os_user)
            kwargs.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[], cwd="/")
            env.update(HOME=pw.pw_dir or "/", USER=self.os_user, LOGNAME=self.os_user)
        env["LC_ALL"] = "C"
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, input=input, env=env, check=False, **kwargs
            )
        except OSError as exc:
            raise ClusterError(f"could not run {argv[0]}: {exc}") from exc
        if check and proc.returncode != 0:
            raise ClusterError(
                f"`{' '.join(argv)}` failed (exit {proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc


def _has_postgis_elsewhere(bindir: Path) -> bool:
    # Non-Debian layouts: <sharedir>/extension/postgis.control next to the binaries.
    share = bindir.parent / "share"
    return any(share.glob("**/extension/postgis.control"))


def _current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _digest(path: Path) -> str:
    return hashlib.sha1(str(path).encode()).hexdigest()[:12]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    """Whether a server could listen on the port now. Like PostgreSQL, bind with SO_REUSEADDR:
    connections in TIME_WAIT after a stop must not push a restart onto another port (clients
    that know the old port would never find the server again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _accepting(url: str, *, dbname: str | None = None) -> bool:
    if dbname:
        url = re.sub(r"/[^/?]*$", f"/{dbname}", url)
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(log not readable)"


__all__ = ["ClusterError", "ClusterState", "LocalCluster", "find_bindir"]
