"""Streaming-replication standbys of the private cluster (``twin db start --replica N``).

Each replica is a real PostgreSQL physical standby: ``pg_basebackup -R`` copies the primary's
data directory (and writes ``standby.signal`` and ``primary_conninfo``), then ``pg_ctl`` starts
it on a free port of its own. The primary streams its WAL to it; the replica answers read-only
queries (hot standby) a few milliseconds behind.

Layout, beside the primary's files (``server_base`` of :class:`~twin.db.cluster.LocalCluster`)::

    replicas.json          state: one entry per replica (name, port, data dir, log)
    replicas/r1/pgdata/    the first replica's data directory
    replicas/r1/postgres.log

The replicas share the primary's Unix socket directory (socket files carry the port).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from twin.db.cluster import (
    SUPERUSER,
    ClusterError,
    ClusterState,
    LocalCluster,
    _accepting,
    _free_port,
    _port_free,
    _tail,
)

#: The replica's status as the replica and the primary see it (bound parameters: none).
REPLICA_SQL = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
    " extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8"
)
SENDERS_SQL = (
    "SELECT application_name, state, replay_lsn::text,"
    " pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,"
    " extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication"
)


@dataclass
class ReplicaState:
    """What ``replicas.json`` records about one replica."""

    name: str
    pgdata: str
    log_file: str
    port: int
    apply_delay_ms: int = 0

    def url(self, db_name: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{db_name}"


class ReplicaSet:
    """The replicas of ``cluster`` (whose primary must be running to create or start them)."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.state_file = cluster.base / "replicas.json"

    # ------------------------------------------------------------------ public operations
    def start(
        self, count: int | None = None, *, apply_delay_ms: int = 0, timeout_s: float = 120.0
    ) -> list[dict[str, Any]]:
        """Create (first time) and start replicas ``r1..r<count>``; stop any beyond ``count``.

        ``count=None``: start the replicas already recorded. ``apply_delay_ms``: the replicas
        created by this call replay each commit that long after it happened
        (``recovery_min_apply_delay``; a staging aid for staleness tests). Safe to run twice.
        Returns one entry per replica: name, url, port, and whether this call started it.
        """
        primary = self._primary()
        replicas = self.load()
        if count is not None:
            if count < 0:
                raise ClusterError(f"--replica must be 0 or more, got {count}")
            for extra in replicas[count:]:
                self._stop_one(primary, extra, timeout_s)
            have = {r.name for r in replicas}
            for i in range(1, count + 1):
                if f"r{i}" not in have:
                    replicas.append(self._create(primary, f"r{i}", apply_delay_ms, timeout_s))
                    self._save(replicas)
            wanted = replicas[:count]
        else:
            wanted = replicas
        out = []
        for r in wanted:
            started = self._start_one(primary, r, replicas, timeout_s)
            out.append({"name": r.name, "url": r.url(primary.db_name), "port": r.port,
                        "started": started})  # fmt: skip
        return out

    def stop(self, *, timeout_s: float = 60.0) -> list[str]:
        """Stop every running replica (fast shutdown); the names of those stopped."""
        primary = self.cluster.load()
        if primary is None:
            return []
        return [r.name for r in self.load() if self._stop_one(primary, r, timeout_s)]

    def status(self) -> list[dict[str, Any]]:
        """Each replica: running, url, replay LSN, bytes and seconds behind the primary."""
        primary = self.cluster.load()
        if primary is None:
            return []
        senders = self._senders(primary)
        out = []
        for r in self.load():
            running = self._running(primary, r)
            entry: dict[str, Any] = {
                "name": r.name, "port": r.port, "url": r.url(primary.db_name),
                "pgdata": r.pgdata, "running": running, "apply_delay_ms": r.apply_delay_ms,
                "in_recovery": None, "replay_lsn": None, "replay_age_s": None,
                "streaming": False, "lag_bytes": None, "replay_lag_s": None,
            }  # fmt: skip
            if running:
                try:
                    with psycopg.connect(r.url("postgres"), connect_timeout=3) as conn:
                        row = conn.execute(REPLICA_SQL).fetchone()
                    if row is not None:
                        entry.update(in_recovery=row[0], replay_lsn=row[1], replay_age_s=row[2])
                except psycopg.Error as exc:
                    entry["error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            sender = senders.get(r.name)
            if sender is not None:
                entry.update(streaming=sender[0] == "streaming", lag_bytes=sender[2],
                             replay_lag_s=sender[3])  # fmt: skip
            out.append(entry)
        return out

    def load(self) -> list[ReplicaState]:
        if not self.state_file.is_file():
            return []
        try:
            return [ReplicaState(**r) for r in json.loads(self.state_file.read_text())]
        except (ValueError, TypeError) as exc:
            raise ClusterError(f"{self.state_file} is unreadable ({exc}); remove it") from exc

    def urls(self) -> list[str]:
        """URLs of the running replicas (for ``TWIN_READ_DATABASE_URLS``)."""
        primary = self.cluster.load()
        if primary is None:
            return []
        return [r.url(primary.db_name) for r in self.load() if self._running(primary, r)]

    # ------------------------------------------------------------------ internals
    def _primary(self) -> ClusterState:
        primary = self.cluster.load()
        if primary is None or not self.cluster._pg_ctl_status(primary):
            raise ClusterError("the primary is not running: run `twin db start` first")
        return primary

    def _create(
        self, primary: ClusterState, name: str, apply_delay_ms: int, timeout_s: float
    ) -> ReplicaState:
        home = Path(primary.pgdata).parent / "replicas" / name
        for d in (home.parent, home):
            d.mkdir(parents=True, exist_ok=True)
            self.cluster._chown(d)
        pgdata = home / "pgdata"
        if pgdata.exists():  # a half-made copy of an interrupted earlier call
            self.cluster._run(["rm", "-rf", str(pgdata)])
        self.cluster._run(
            [str(Path(primary.bindir) / "pg_basebackup"), "-h", "127.0.0.1",
             "-p", str(primary.port), "-U", SUPERUSER, "-D", str(pgdata), "-R",
             "-X", "stream", "--checkpoint=fast", "--no-password"],
        )  # fmt: skip
        # -R wrote primary_conninfo; name the replica so pg_stat_replication tells them apart.
        self.cluster._run(
            ["sh", "-c", f"cat >> '{pgdata / 'postgresql.auto.conf'}'"],
            input=(
                f"primary_conninfo = 'host=127.0.0.1 port={primary.port} user={SUPERUSER} "
                f"application_name={name}'\n"
            ),
        )
        return ReplicaState(
            name=name, pgdata=str(pgdata), log_file=str(home / "postgres.log"),
            port=_free_port(), apply_delay_ms=apply_delay_ms,
        )  # fmt: skip

    def _write_conf(self, primary: ClusterState, r: ReplicaState) -> None:
        """The replica's own twin.conf: its port, the primary's socket directory, hot standby.
        (The copy brought the primary's twin.conf along: this one replaces it.)"""
        conf = "\n".join(
            [
                "# written by `twin db start --replica`; edited on every start",
                f"port = {r.port}",
                "listen_addresses = '127.0.0.1'",
                f"unix_socket_directories = '{primary.socket_dir}'",
                "max_connections = 100",
                "shared_buffers = 128MB",
                "work_mem = 32MB",
                "jit = off",
                "hot_standby = on",
                # Queries on the replica hold back the primary's vacuum rather than being
                # cancelled by it (a tile query killed mid-way is a 503).
                "hot_standby_feedback = on",
                f"recovery_min_apply_delay = {int(r.apply_delay_ms)}",
                "",
            ]
        )
        self.cluster._run(["sh", "-c", f"cat > '{Path(r.pgdata) / 'twin.conf'}'"], input=conf)

    def _start_one(
        self, primary: ClusterState, r: ReplicaState, replicas: list[ReplicaState], t: float
    ) -> bool:
        if self._running(primary, r):
            return False
        if not _port_free(r.port):
            r.port = _free_port()
            self._save(replicas)
        self._write_conf(primary, r)
        proc = self.cluster._run(
            [str(Path(primary.bindir) / "pg_ctl"), "-D", r.pgdata, "-l", r.log_file,
             "-w", "-t", str(int(t)), "start"],
            check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise ClusterError(
                f"pg_ctl start of replica {r.name} failed (exit {proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip()}\n"
                f"--- last lines of {r.log_file} ---\n{_tail(Path(r.log_file))}"
            )
        deadline = time.monotonic() + t
        while not _accepting(r.url("postgres")):
            if time.monotonic() > deadline:
                raise ClusterError(f"replica {r.name} did not accept connections; see {r.log_file}")
            time.sleep(0.1)
        return True

    def _stop_one(self, primary: ClusterState, r: ReplicaState, timeout_s: float) -> bool:
        if not self._running(primary, r):
            return False
        proc = self.cluster._run(
            [str(Path(primary.bindir) / "pg_ctl"), "-D", r.pgdata, "-m", "fast", "-w",
             "-t", str(int(timeout_s)), "stop"],
            check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise ClusterError(f"pg_ctl stop of replica {r.name} failed: {proc.stderr.strip()}")
        return True

    def _running(self, primary: ClusterState, r: ReplicaState) -> bool:
        if not (Path(r.pgdata) / "PG_VERSION").is_file():
            return False
        proc = self.cluster._run(
            [str(Path(primary.bindir) / "pg_ctl"), "-D", r.pgdata, "status"], check=False
        )
        return proc.returncode == 0

    def _senders(self, primary: ClusterState) -> dict[str, tuple[Any, ...]]:
        """pg_stat_replication on the primary, by application name (empty when it is down)."""
        try:
            with psycopg.connect(primary.url, connect_timeout=3) as conn:
                rows = conn.execute(SENDERS_SQL).fetchall()
        except psycopg.Error:
            return {}
        return {row[0]: tuple(row[1:]) for row in rows}

    def _save(self, replicas: list[ReplicaState]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(r) for r in replicas], indent=2) + "\n")
        tmp.replace(self.state_file)


__all__ = ["ReplicaSet", "ReplicaState"]
