"""The ``twin`` command. Thin: parse, call the domain, print (``--json`` for machines)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer

from twin.cli_backup import db_dump, db_restore
from twin.cli_report import report as report_command
from twin.cli_risk import alerts_app, risk_app
from twin.cli_sense import sense_app
from twin.cli_serve import run_server
from twin.cli_serve import serve as serve_command
from twin.cli_sim import flood_app, simulate_app, traffic_app
from twin.cli_support import JsonOpt
from twin.cli_support import emit as _emit
from twin.cli_support import fail as _fail
from twin.cli_support import load_settings as _settings
from twin.cli_tasks import tasks_app
from twin.cli_users import audit_command, users_app
from twin.db.cluster import ClusterError
from twin.db.engine import DatabaseNotConfiguredError, database_url, libpq_url, local_cluster
from twin.settings import Settings

app = typer.Typer(
    name="twin",
    help="City digital twin: a PostGIS city model on H3 cells, tiles, risk and simulations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="The database: a private PostGIS cluster or TWIN_DATABASE_URL.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(flood_app, name="flood")
app.add_typer(simulate_app, name="simulate")
app.add_typer(traffic_app, name="traffic")
app.add_typer(risk_app, name="risk")
app.add_typer(alerts_app, name="alerts")
app.add_typer(tasks_app, name="tasks")
app.add_typer(users_app, name="users")
app.add_typer(sense_app, name="sense")
app.command("audit")(audit_command)
app.command("report")(report_command)
app.command("serve")(serve_command)


def _external_reachable(url: str) -> tuple[bool, str]:
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'postgis')"
            ).fetchone()
            return True, f"PostGIS {row[0]}" if row and row[0] else "no PostGIS extension yet"
    except psycopg.Error as exc:
        return False, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@db_app.command("start")
def db_start(as_json: JsonOpt = False) -> None:
    """Create (first time) and start the private cluster, its database and PostGIS.

    Safe to run twice. With TWIN_DATABASE_URL set there is nothing to start: it checks the
    database answers instead.
    """
    settings = _settings()
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
        state, started = local_cluster(settings).start()
    except ClusterError as exc:
        _fail(str(exc))
    _emit(
        {"started": started, "url": state.url, "port": state.port, "pgdata": state.pgdata},
        as_json,
        f"{'started' if started else 'already running'}: {state.url}",
    )


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
        stopped = local_cluster(settings).stop()
    except ClusterError as exc:
        _fail(str(exc))
    _emit({"stopped": stopped}, as_json, "stopped" if stopped else "not running")


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
            result = local_cluster(settings).status()
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
    _emit(result, as_json, human)
    if not result.get("accepting"):
        raise typer.Exit(3)


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
        url = database_url(_settings())
        at = upgrade(url, revision)
    except DatabaseNotConfiguredError as exc:
        _fail(str(exc))
    except psycopg.OperationalError as exc:
        _fail(f"cannot reach the database: {exc}")
    except Exception as exc:  # alembic and SQLAlchemy errors: say which and stop
        _fail(f"migration failed: {type(exc).__name__}: {exc}")
    _emit({"revision": at}, as_json, f"schema at revision {at}")


db_app.command("dump")(db_dump)
db_app.command("restore")(db_restore)


class _RichReporter:
    """Progress bars for `twin demo` (one line per stage)."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.task: Any = None

    def stage(self, name: str, total: int | None = None) -> None:
        self.task = self.progress.add_task(name, total=total)

    def advance(self, amount: int = 1, detail: str | None = None) -> None:
        if self.task is not None:
            self.progress.update(self.task, advance=amount, description=detail or None)

    def done(self, name: str) -> None:
        if self.task is not None:
            task = self.progress.tasks[self.task]
            self.progress.update(
                self.task, description=name, completed=task.total or 1, total=task.total or 1
            )


@app.command("demo")
def demo(
    size: Annotated[str, typer.Option(help="City size: tiny, small, medium or large.")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same city.")] = 1,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Build the city and stop.")] = False,
    port: Annotated[int | None, typer.Option(help="Port to serve on (TWIN_PORT).")] = None,
    storm_years: Annotated[
        float, typer.Option(help="Return period of the demo storm (years); 0: no storm.")
    ] = 50.0,
    storm_duration: Annotated[str, typer.Option(help="Duration of the demo storm.")] = "1h",
    as_json: JsonOpt = False,
) -> None:
    """Database up, demo city generated and loaded, joined onto H3 cells, a design storm run
    on it, then serve."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from twin.city.demo import build_demo, table_counts
    from twin.city.synth.frame import SIZES

    if size not in SIZES:
        _fail(f"--size must be one of {', '.join(SIZES)}; got {size!r}", code=2)
    settings = _settings()
    if port is not None:
        settings = settings.model_copy(update={"port": port})
    console = Console(stderr=as_json)
    if not settings.database_url:
        try:
            state, started = local_cluster(settings).start()
        except ClusterError as exc:
            _fail(str(exc))
        console.print(f"database {'started' if started else 'running'}: {state.url}")
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=False, disable=as_json) as progress:
            result = build_demo(settings, size=size, seed=seed, reporter=_RichReporter(progress))
            storm = _demo_storm(settings, progress, storm_years, storm_duration)
            traffic = _demo_traffic(settings, progress, storm)
            risk = _demo_risk(settings, progress)
        with psycopg.connect(database_url(settings)) as conn:
            if storm or traffic:
                result.counts = table_counts(conn)
            demo_token = _demo_user(conn)
    except (DatabaseNotConfiguredError, psycopg.OperationalError) as exc:
        _fail(f"database: {exc}")
    base = f"http://{settings.host}:{settings.port}"
    signed_in = f"{base}/map#token={demo_token}"
    if as_json:
        out = {**result.as_dict(), "storm": storm, "traffic": traffic, "risk": risk,
               "demo_user": {"name": DEMO_USER, "role": "operator", "token": demo_token,
                             "map": signed_in}}  # fmt: skip
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False, default=str))
    else:
        table = Table(title=f"demo city '{size}' (seed {seed})")
        table.add_column("table")
        table.add_column("rows", justify="right")
        for name, n in result.counts.items():
            if n:
                table.add_row(name, f"{n:,}")
        console.print(table)
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings_s.items())
        console.print(f"took {stages}; peak memory {result.peak_rss_mb:,.0f} MB")
        console.print(f"rasters (DEM, drainage capacity): {result.raster_dir}")
        if storm:
            console.print(
                f"storm run {storm['run_id']} ({storm_years:g}-year, {storm_duration}): max depth "
                f"{storm['max_depth_m']:.2f} m, {storm['flooded_cells']} cells flooded, "
                f"{storm['closed_links']} road links closed, {storm['events']} waterlogging "
                f"events; {storm['wall_s']:.0f} s"
            )
        if traffic:
            line = (
                f"traffic run {traffic['run_id']} (morning peak, {traffic['trips']:,.0f} trips): "
                f"delay index {traffic['delay_index']:.2f} ({traffic['delay_band']})"
            )
            if "baseline" in traffic:
                line += (
                    f" with the storm's {traffic['closed_links']} closed road links, "
                    f"{traffic['baseline']['delay_index']:.2f} without; "
                    f"{traffic['change']['tstt_veh_h']:+,.0f} veh-h"
                )
            console.print(line)
        red = risk["risk"]["layers"]["onemap"]["red"]
        alerts = sum(c["raised"] for c in risk["alerts"].values())
        console.print(
            f"risk one map: {len(risk['risk']['layers']) - 1} layers, {red} red cells; "
            f"{alerts} alerts raised (GET /api/alerts), {len(risk['tasks'])} tasks dispatched "
            "(GET /api/tasks)"
        )
    if not as_json:
        console.print(
            f"the public view (aggregates only): {base}/map; signed in as '{DEMO_USER}' "
            f"(operator, whole city; a new token each run): {signed_in}"
        )
    if no_serve:
        return
    console.print(f"API: {base}/docs, {base}/healthz; Ctrl-C stops the server")
    run_server(settings)


DEMO_USER = "demo"


def _demo_user(conn: psycopg.Connection) -> str:
    """The demo's operator, with a fresh token (tokens are stored hashed, so a new one each run:
    the previous run's stops working)."""
    from twin.auth import add_user, new_user_token

    if conn.execute("SELECT 1 FROM twin.app_user WHERE name = %s", (DEMO_USER,)).fetchone():
        token = new_user_token(conn, DEMO_USER)
    else:
        _, token = add_user(conn, DEMO_USER, "operator")
    conn.commit()
    return token


def _demo_storm(
    settings: Settings, progress: Any, years: float, duration: str
) -> dict[str, Any] | None:
    if years <= 0:
        return None
    from twin.runs import flood as flood_runs

    try:
        params = flood_runs.FloodParams(
            return_period_years=years, duration_s=flood_runs.parse_duration(duration)
        )
    except flood_runs.FloodRunError as exc:
        _fail(str(exc), code=2)
    task = progress.add_task("storm (flood model)", total=100)
    return flood_runs.run_flood(
        settings, params, progress=lambda f: progress.update(task, completed=round(100 * f))
    )


def _demo_risk(settings: Settings, progress: Any) -> dict[str, Any]:
    """The risk one map on the demo's runs, then the alert rules."""
    from twin.risk.catalog import CatalogError
    from twin.risk.compute import ComputeError
    from twin.risk.refresh import refresh
    from twin.risk.rules import RuleError

    task = progress.add_task("risk one map and alerts", total=1)
    try:
        out = refresh(settings)
    except (CatalogError, RuleError, ComputeError) as exc:
        _fail(str(exc), code=2)
    out["tasks"] = asyncio.run(_demo_dispatch(database_url(settings)))
    progress.update(task, completed=1)
    return out


async def _demo_dispatch(url: str, limit: int = 5) -> list[int]:
    """One-click dispatch for the deepest flooded cells: a task per alert to its grid patch."""
    from twin.risk.tasks import dispatch

    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT id, subject, value FROM twin.alert WHERE rule_id = 'flood_depth_cell'"
            " AND status = 'active' ORDER BY value DESC, id LIMIT %s",
            (limit,),
        )
        ids = []
        for alert_id, subject, depth in await cur.fetchall():
            task = await dispatch(
                conn, title=f"积水处置 / clear waterlogging: {depth:.2f} m in {subject}",
                actor="demo", priority=1, alert_id=alert_id,
            )  # fmt: skip
            ids.append(int(task["id"]))
        await conn.commit()
    return ids


def _demo_traffic(
    settings: Settings, progress: Any, storm: dict[str, Any] | None
) -> dict[str, Any]:
    """The morning peak, with the demo storm's road closures when there was one."""
    from twin.runs import traffic as traffic_runs

    params = traffic_runs.TrafficParams(flood_runs=(storm["run_id"],) if storm else ())
    task = progress.add_task("morning peak (traffic)", total=100)
    return traffic_runs.run_traffic(
        settings, params, progress=lambda f: progress.update(task, completed=round(100 * f))
    )


ingest_app = typer.Typer(
    help="Load real data: OSM, vector files, people tables, rasters (one transaction each).",
    no_args_is_help=True,
)
app.add_typer(ingest_app, name="ingest")

FileArg = Annotated[Path, typer.Argument(help="The file to load.")]
Opt = typer.Option


def _print_report(report: Any, as_json: bool) -> None:
    d = report.as_dict()
    if as_json:
        typer.echo(json.dumps(d, indent=2, ensure_ascii=False, default=str))
        return
    typer.echo(
        f"{d['kind']}: read {d['read']:,}, loaded {d['loaded']:,}, repaired {d['repaired']:,}, "
        f"rejected {d['rejected']:,} in {d['seconds']:.1f} s"
    )
    for reason, rows in d["rejected_rows"].items():
        typer.echo(f"  rejected ({reason}): rows {', '.join(map(str, rows[:20]))}")
    for k, v in d.items():
        if k not in (
            "path",
            "kind",
            "read",
            "loaded",
            "repaired",
            "rejected",
            "rejected_rows",
            "seconds",
        ):
            typer.echo(f"  {k}: {v}")


def _run_ingest(fn: Any, as_json: bool) -> None:
    """Run ``fn(progress)`` with a spinner line showing its stage, then print its report."""
    from rich.console import Console

    from twin.ingest.report import IngestError

    console = Console(stderr=True)
    try:
        with console.status("starting", spinner="dots") as status:
            report = fn(lambda stage: status.update(stage))
    except IngestError as exc:
        _fail(f"{exc} (nothing was loaded)")
    except (DatabaseNotConfiguredError, psycopg.OperationalError) as exc:
        _fail(f"database: {exc}")
    # New data changes the risk map and may fire rules; a broken layer file is only logged.
    from twin.risk.refresh import refresh_quietly

    refresh_quietly(_settings())
    _print_report(report, as_json)


def _vector_command(kind: str) -> Any:
    def command(
        file: FileArg,
        replace: Annotated[
            bool, Opt("--replace/--append", help="Replace the layer, or add to it.")
        ] = False,
        crs: Annotated[
            str | None, Opt(help="CRS of a file that declares none (e.g. EPSG:4326).")
        ] = None,
        layer: Annotated[str | None, Opt(help="Layer of a multi-layer file (GeoPackage).")] = None,
        id_field: Annotated[str | None, Opt(help="Column with the source id.")] = None,
        height_field: Annotated[str | None, Opt(help="buildings: height (m).")] = None,
        levels_field: Annotated[str | None, Opt(help="buildings: number of storeys.")] = None,
        use_field: Annotated[str | None, Opt(help="buildings: use.")] = None,
        address_field: Annotated[str | None, Opt(help="buildings: standard address text.")] = None,
        land_use_field: Annotated[str | None, Opt(help="parcels: GB 50137 class.")] = None,
        class_field: Annotated[str | None, Opt(help="roads: class or OSM highway value.")] = None,
        type_field: Annotated[str | None, Opt(help="events: type.")] = None,
        time_field: Annotated[str | None, Opt(help="events: date-time.")] = None,
        wkt_field: Annotated[str | None, Opt(help="CSV: WKT geometry column.")] = None,
        lon_field: Annotated[str | None, Opt(help="CSV: longitude column.")] = None,
        lat_field: Annotated[str | None, Opt(help="CSV: latitude column.")] = None,
        skip_invalid: Annotated[
            bool, Opt("--skip-invalid", help="Leave out unrepairable rows.")
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        from twin.ingest.layers import Fields
        from twin.ingest.vector import ingest_vector

        fields = Fields(
            id=id_field,
            height=height_field,
            levels=levels_field,
            use=use_field,
            address=address_field,
            land_use=land_use_field,
            road_class=class_field,
            type=type_field,
            time=time_field,
        )
        _run_ingest(
            lambda progress: ingest_vector(
                kind,
                file,
                _settings(),
                mode="replace" if replace else "append",
                fields=fields,
                crs=crs,
                layer=layer,
                wkt_field=wkt_field,
                lon_field=lon_field,
                lat_field=lat_field,
                skip_invalid=skip_invalid,
                progress=progress,
            ),
            as_json,
        )

    command.__doc__ = (
        f"Load {kind} from GeoPackage, GeoJSON, Shapefile, GeoParquet, FlatGeobuf or CSV."
    )
    return command


for _kind in ("buildings", "parcels", "roads", "events"):
    ingest_app.command(_kind)(_vector_command(_kind))


@ingest_app.command("osm")
def ingest_osm_cmd(
    file: FileArg,
    replace: Annotated[bool, Opt("--replace/--append", help="Replace the layers, or add.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Load buildings, roads, land use and hazard POIs from an OpenStreetMap .osm.pbf file."""
    from twin.ingest.osm import ingest_osm

    mode = "replace" if replace else "append"
    _run_ingest(lambda p: ingest_osm(file, _settings(), mode=mode, progress=p), as_json)


@ingest_app.command("people")
def ingest_people_cmd(
    file: FileArg,
    replace: Annotated[
        bool, Opt("--replace/--append", help="Replace all residents, or add.")
    ] = False,
    skip_unmatched: Annotated[
        bool, Opt("--skip-unmatched", help="Leave out rows whose home is not found.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Load residents (CSV or Parquet) located by standard address or lon/lat.

    Only allow-listed columns are accepted: age_band, resident_type, home_address (or
    address), home_lon/home_lat (or lon/lat), home_floor, lives_alone, work_address,
    work_lon/work_lat. A file with any other column is refused unread.
    """
    from twin.ingest.people import ingest_people

    mode = "replace" if replace else "append"
    _run_ingest(
        lambda p: ingest_people(
            file, _settings(), mode=mode, skip_unmatched=skip_unmatched, progress=p
        ),
        as_json,
    )


def _raster_command(kind: str) -> Any:
    def command(
        file: FileArg,
        name: Annotated[str | None, Opt(help="Name in raster_asset (default: file stem).")] = None,
        crs: Annotated[str | None, Opt(help="CRS of a raster that declares none.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        from twin.ingest.raster import ingest_raster

        _run_ingest(
            lambda p: ingest_raster(file, _settings(), kind=kind, name=name, crs=crs, progress=p),
            as_json,
        )

    command.__doc__ = f"Load a {kind} raster (GeoTIFF), reprojected to the city CRS."
    return command


ingest_app.command("dem")(_raster_command("dem"))
ingest_app.command("roughness")(_raster_command("roughness"))
ingest_app.command("drainage")(_raster_command("drainage_capacity"))


grid_app = typer.Typer(help="H3 cells: statistics of the model per cell.", no_args_is_help=True)
app.add_typer(grid_app, name="grid")


@grid_app.command("refresh")
def grid_refresh(as_json: JsonOpt = False) -> None:
    """Recompute cell statistics at every configured resolution (one transaction)."""
    import time

    from twin.city.cells import refresh_cell_stats
    from twin.city.load import bump_layer_versions

    settings = _settings()
    try:
        url = database_url(settings)
        t0 = time.perf_counter()
        with psycopg.connect(url) as conn, conn.transaction():
            rows = refresh_cell_stats(conn, settings.h3_resolutions, k=settings.suppression_k)
            bump_layer_versions(conn, ("cell_stats",))
    except (DatabaseNotConfiguredError, psycopg.OperationalError) as exc:
        _fail(f"database: {exc}")
    seconds = time.perf_counter() - t0
    _emit(
        {"rows": rows, "resolutions": settings.h3_resolutions, "seconds": round(seconds, 2)},
        as_json,
        f"cell statistics: {rows:,} cells at resolutions {settings.h3_resolutions} "
        f"in {seconds:.1f} s",
    )


@app.command("version")
def version() -> None:
    """Print the package version."""
    import twin

    typer.echo(twin.__version__)
