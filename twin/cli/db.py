"""``twin db ...``: the private cluster or TWIN_DATABASE_URL, migrations, dump and restore."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
import typer

from twin.cli.backup import db_dump, db_restore
from twin.cli.support import JsonOpt
from twin.cli.support import emit as _emit
from twin.cli.support import fail as _fail
from twin.cli.support import load_settings as _settings
from twin.db.cluster import ClusterError
from twin.db.engine import DatabaseNotConfiguredError, database_url, libpq_url, local_cluster
from twin.db.replicas import ReplicaSet
from twin.settings import Settings

db_app = typer.Typer(
    help="The database: a private PostGIS cluster or TWIN_DATABASE_URL.", no_args_is_help=True
)


def _external_reachable(url: str) -> tuple[bool, str]:
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'postgis')"
            ).fetchone()
            return True, f"PostGIS {row[0]}" if row and row[0] else "no PostGIS extension yet"
    except psycopg.Error as exc:
        return False, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


ReplicaOpt = Annotated[
    int | None,
    typer.Option(
        "--replica",
        min=0,
        help="Also run N streaming-replication standbys (read replicas) of the cluster; "
        "default: those already created. Point TWIN_READ_DATABASE_URLS at them.",
    ),
]
DelayOpt = Annotated[
    int,
    typer.Option(
        "--replica-delay-ms",
        min=0,
        help="Replicas created now replay each commit this long after it (staging aid).",
    ),
]


@db_app.command("start")
def db_start(as_json: JsonOpt = False, replica: ReplicaOpt = None, delay: DelayOpt = 0) -> None:
    """Create (first time) and start the private cluster, its database and PostGIS.

    Safe to run twice. With TWIN_DATABASE_URL set there is nothing to start: it checks the
    database answers instead. ``--replica N``: also create (first time) and start N read
    replicas, each a physical standby with its own data directory and port.
    """
    settings = _settings()
    if settings.database_url and replica:
        _fail("--replica works on the private cluster; TWIN_DATABASE_URL is set")
    if settings.database_url:
        ok, info = _external_reachable(settings.database_url)
        if not ok:
            _fail(f"TWIN_DATABASE_URL does not answer: {info}")
        _emit(
            {"external": True, "reachable": True, "info": info},
            as_json,
            f"using TWIN_DATABASE_URL ({info}); nothing to start",
        )
        return
    try:
        cluster = local_cluster(settings)
        state, started = cluster.start()
        replicas = ReplicaSet(cluster).start(replica, apply_delay_ms=delay)
    except ClusterError as exc:
        _fail(str(exc))
    lines = [f"{'started' if started else 'already running'}: {state.url}"]
    lines += [
        f"replica {r['name']} {'started' if r['started'] else 'already running'}: {r['url']}"
        for r in replicas
    ]
    if replicas:
        urls = ",".join(r["url"] for r in replicas)
        lines.append(f"route reads to them: TWIN_READ_DATABASE_URLS={urls}")
    _emit(
        {"started": started, "url": state.url, "port": state.port, "pgdata": state.pgdata,
         "replicas": replicas},
        as_json,
        "\n".join(lines),
    )  # fmt: skip


@db_app.command("stop")
def db_stop(as_json: JsonOpt = False) -> None:
    """Stop the private cluster (fast shutdown) and wait until its process is gone."""
    settings = _settings()
    if settings.database_url:
        _emit(
            {"external": True, "stopped": False},
            as_json,
            "TWIN_DATABASE_URL is set: that database is not ours to stop",
        )
        return
    try:
        cluster = local_cluster(settings)
        replicas = ReplicaSet(cluster).stop()  # before the primary: they would only retry
        stopped = cluster.stop()
    except ClusterError as exc:
        _fail(str(exc))
    human = "stopped" if stopped else "not running"
    if replicas:
        human += f" (and replicas {', '.join(replicas)})"
    _emit({"stopped": stopped, "replicas_stopped": replicas}, as_json, human)


@db_app.command("status")
def db_status(as_json: JsonOpt = False) -> None:
    """Whether the database is running and accepting connections (exit 3 when it is not)."""
    settings = _settings()
    if settings.database_url:
        ok, info = _external_reachable(settings.database_url)
        result: dict[str, Any] = {"external": True, "running": ok, "accepting": ok, "info": info}
        human = f"TWIN_DATABASE_URL: {'accepting connections' if ok else 'unreachable'} ({info})"
    else:
        try:
            cluster = local_cluster(settings)
            result = cluster.status()
            result["replicas"] = ReplicaSet(cluster).status()
        except ClusterError as exc:
            _fail(str(exc))
        if not result["initialised"]:
            human = f"not created (run `twin db start`; it will live under {settings.data_dir})"
        elif result["running"]:
            human = (
                f"running (pid {result['pid']}, "
                f"{'accepting connections' if result['accepting'] else 'not accepting yet'}) "
                f"at {result['url']}"
            )
        else:
            human = f"stopped (data in {result['pgdata']})"
        for r in result["replicas"]:
            human += "\n" + _replica_line(r)
    _emit(result, as_json, human)
    if not result.get("accepting"):
        raise typer.Exit(3)


def _replica_line(r: dict[str, Any]) -> str:
    if not r["running"]:
        return f"replica {r['name']}: stopped (data in {r['pgdata']})"
    lag = "not streaming" if not r["streaming"] else f"{r['lag_bytes']} bytes behind"
    if r["replay_lag_s"] is not None:
        lag += f", replay lag {r['replay_lag_s']:.3f} s"
    return f"replica {r['name']}: running at {r['url']}, replayed to {r['replay_lsn']} ({lag})"


@db_app.command("url")
def db_url() -> None:
    """Print the database URL (libpq form: works with psql)."""
    try:
        typer.echo(database_url(_settings()))
    except DatabaseNotConfiguredError as exc:
        _fail(str(exc))


@db_app.command("migrate")
def db_migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    as_json: JsonOpt = False,
) -> None:
    """Apply the schema migrations (alembic) up to ``--revision``."""
    from twin.db.migrate import upgrade

    try:
        settings = _settings()
        url = database_url(settings)
        at = upgrade(url, revision)
        made = _ensure_partitions(url, settings)
    except DatabaseNotConfiguredError as exc:
        _fail(str(exc))
    except psycopg.OperationalError as exc:
        _fail(f"cannot reach the database: {exc}")
    except Exception as exc:  # alembic and SQLAlchemy errors: say which and stop
        _fail(f"migration failed: {type(exc).__name__}: {exc}")
    _emit({"revision": at, "partitions_made": made}, as_json, f"schema at revision {at}")


def _ensure_partitions(url: str, settings: Settings) -> list[str]:
    """The partitions ahead of twin.observation and of the history tables, and one per district
    of twin.person, once the schema has them (cheap: catalog reads when they exist)."""
    from twin.city import districts
    from twin.db import history
    from twin.sense import partitions

    today = datetime.now(UTC).date()
    made: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('twin_part.observation_default')").fetchone()
        if row is None or row[0] is None:
            return made
        made += list(partitions.ensure(
            conn, today=today, ahead_days=settings.sense_partitions_ahead_days,
            retention_days=settings.sense_retention_days,
        ))  # fmt: skip
        if history.installed(conn):
            ahead = settings.history_partitions_ahead_months
            made += list(history.ensure_all(conn, today=today, ahead_months=ahead))
            with conn.transaction():
                made += [n for n, k in districts.ensure(conn).items() if k >= 0]
    return made


@db_app.command("partitions")
def db_partitions(
    ensure: Annotated[
        bool, typer.Option("--ensure", help="Make the months ahead and a partition per district.")
    ] = False,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Detach the months past each table's retention "
            "(TWIN_EVENT_RETENTION_DAYS, ...), CONCURRENTLY.",
        ),
    ] = False,
    drop: Annotated[
        bool, typer.Option("--drop", help="With --detach: drop them (TWIN_HISTORY_DROP_DETACHED).")
    ] = False,
    today: Annotated[
        str | None, typer.Option(help="The day to act for, YYYY-MM-DD (default: today, UTC).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The monthly partitions of twin.event, twin.task_transition and twin.audit_log and the
    district partitions of twin.person (rows are the planner's estimates); twin.observation's
    are `twin sense partitions`."""
    from datetime import date

    from twin.city import districts
    from twin.db import history
    from twin.db import partitions as parts

    settings = _settings()
    try:
        day = date.fromisoformat(today) if today else datetime.now(UTC).date()
    except ValueError:
        _fail(f"--today: expected YYYY-MM-DD, got {today!r}", 2)
    result: dict[str, Any] = {"today": day.isoformat()}
    try:
        with psycopg.connect(database_url(settings), autocommit=True) as conn:
            if not history.installed(conn):
                _fail("the schema has no history partitions: run `twin db migrate` first")
            if ensure:
                made = history.ensure_all(
                    conn, today=day, ahead_months=settings.history_partitions_ahead_months
                )
                with conn.transaction():
                    made.update(districts.ensure(conn))
                result["made"] = made
            if detach:
                result["detached"] = history.detach_all(conn, settings, today=day, drop=drop)
            result["partitions"] = [
                p.as_dict() for t in history.TABLES for p in history.partitions(conn, t)
            ]
            result["partitions"] += [
                {
                    "table": "person",
                    "name": c.name,
                    "month": None,
                    "state": "attached",
                    "rows_estimate": c.rows_estimate,
                    "bytes": c.bytes,
                }
                for c in parts.children(conn, "person")
            ]
    except DatabaseNotConfiguredError as exc:
        _fail(str(exc))
    except psycopg.OperationalError as exc:
        _fail(f"cannot reach the database: {exc}")
    lines = [f"{k}: {v}" for k, v in result.items() if k != "partitions"]
    lines += [f"{p['name']:<32} {p['state']:<9} rows~{p['rows_estimate']} bytes={p['bytes']}"
              for p in result["partitions"]]  # fmt: skip
    _emit(result, as_json, "\n".join(lines))


db_app.command("dump")(db_dump)
db_app.command("restore")(db_restore)
