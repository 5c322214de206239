"""``twin demo``: database up, the demo city built, a storm and the morning peak run, served."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import psycopg
import typer

from twin.cli.serve import run_server
from twin.cli.support import JsonOpt
from twin.cli.support import fail as _fail
from twin.cli.support import load_settings as _settings
from twin.db.cluster import ClusterError
from twin.db.engine import DatabaseNotConfiguredError, database_url, local_cluster
from twin.settings import Settings


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


def demo(
    size: Annotated[str, typer.Option(help="City size: tiny, small, medium or large.")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same city.")] = 1,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Build the city and stop.")] = False,
    port: Annotated[int | None, typer.Option(help="Port to serve on (TWIN_PORT).")] = None,
    storm_years: Annotated[
        float, typer.Option(help="Return period of the demo storm (years); 0: no storm.")
    ] = 50.0,
    storm_duration: Annotated[str, typer.Option(help="Duration of the demo storm.")] = "1h",
    with_traffic: Annotated[
        bool,
        typer.Option(
            "--traffic/--no-traffic",
            help="Run the morning peak (off: time the other stages at city scale).",
        ),
    ] = True,
    live: Annotated[
        bool,
        typer.Option(
            help="While serving: a private MQTT broker, the bridge, and the recorded "
            "storm replayed to the rain gauges and water levels at 60x, on a loop."
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Database up, demo city generated and loaded, joined onto H3 cells, a design storm run
    on it, then serve."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from twin.city.demo import build_demo, table_counts
    from twin.city.synth.frame import SIZES
    from twin.cli.progress import columns as progress_columns

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
    try:
        with Progress(
            *progress_columns(), console=console, transient=False, disable=as_json
        ) as progress:
            result = build_demo(settings, size=size, seed=seed, reporter=_RichReporter(progress))
            if as_json:  # each stage's time as it ends, for long runs (the JSON comes at the end)
                console.print(json.dumps({"timings_s": result.timings_s,
                                          "peak_rss_mb": round(result.peak_rss_mb)}))  # fmt: skip
            storm = _demo_storm(settings, progress, storm_years, storm_duration, size)
            if as_json and storm:
                console.print(json.dumps({"storm": storm}, default=str))
            traffic = _demo_traffic(settings, progress, storm, size) if with_traffic else {}
            if as_json and traffic:
                console.print(json.dumps({"traffic": traffic}, default=str))
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
    if not live or settings.workers > 1:
        run_server(settings)
        return
    _serve_live(settings, console, seed)


def _serve_live(settings: Settings, console: Any, seed: int) -> None:
    """Serve with the live loop: a private broker (unless TWIN_MQTT_URL names one), the bridge
    in the API process, and the demo storm replayed over MQTT at 60x in a background thread."""
    import contextlib
    import threading
    import time

    from twin.sense.broker import BrokerError, private_broker
    from twin.sense.replay import DEMO_SENSORS_SQL, demo_sensors, read_replay, replay, storm_file

    storm_csv = settings.data_dir / "demo-storm.csv"
    with psycopg.connect(database_url(settings)) as conn:
        gauges, levels = demo_sensors(conn.execute(DEMO_SENSORS_SQL).fetchall(), seed=seed)
    n = storm_file(storm_csv, gauges, levels, seed=seed)
    with contextlib.ExitStack() as stack:
        url = settings.mqtt_url
        if not url:
            try:
                url = stack.enter_context(private_broker(settings.data_dir / "mqtt"))
            except BrokerError as exc:
                console.print(f"no live storm: {exc}")
                run_server(settings)
                return
        readings = read_replay(storm_csv)

        def replayer() -> None:
            time.sleep(5)  # the server and its bridge first
            with contextlib.suppress(Exception):
                asyncio.run(replay(readings, url, speed=60, loop=True))

        threading.Thread(target=replayer, daemon=True, name="storm-replay").start()
        console.print(
            f"live: broker {url}, the bridge in the API, {n} recorded readings of "
            f"{len(gauges)} rain gauges and {len(levels)} water levels ({storm_csv}) replayed at "
            "60x on a loop: alerts and tasks follow on /map"
        )
        run_server(settings.model_copy(update={"mqtt_url": url}))


DEMO_USER = "demo"


def _demo_user(conn: psycopg.Connection) -> str:
    """The demo's operator, with a fresh token (tokens are stored hashed, so a new one each run:
    the previous run's stops working)."""
    from twin.access.tokens import add_user, new_user_token

    if conn.execute("SELECT 1 FROM twin.app_user WHERE name = %s", (DEMO_USER,)).fetchone():
        token = new_user_token(conn, DEMO_USER)
    else:
        _, token = add_user(conn, DEMO_USER, "operator")
    conn.commit()
    return token


#: Precision of the demo storm's state by city size. The large city's 15.3 M cells stream
#: through memory every step (the kernel is bound by that, not by arithmetic): float32 halves
#: the state, 12.3 -> 9.4 min on this machine, with max depths within the tolerance measured in
#: BENCHMARKS.md (City scale, 2026-12-07 night).
STORM_DTYPE = {"large": "float32"}


def _demo_storm(
    settings: Settings, progress: Any, years: float, duration: str, size: str
) -> dict[str, Any] | None:
    if years <= 0:
        return None
    from twin.runs import flood as flood_runs

    try:
        params = flood_runs.FloodParams(
            return_period_years=years, duration_s=flood_runs.parse_duration(duration),
            dtype=STORM_DTYPE.get(size, "float64"),
        )  # fmt: skip
    except flood_runs.FloodRunError as exc:
        _fail(str(exc), code=2)
    task = progress.add_task("storm (flood model)", total=100)
    return flood_runs.run_flood(
        settings, params, progress=lambda f: progress.update(task, completed=round(100 * f))
    )


def _demo_risk(settings: Settings, progress: Any) -> dict[str, Any]:
    """The risk one map on the demo's runs, then the alert rules."""
    from twin.alerts.refresh import refresh
    from twin.alerts.rules import RuleError
    from twin.risk.catalog import CatalogError
    from twin.risk.compute import ComputeError

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
    from twin.tasks.service import dispatch

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


#: Zones of the demo's morning peak by city size: the origin-based solver keeps a flow per
#: origin and link, so the large city (507 k links) takes res-7 zones (about 5 km², some 400
#: origins) where 2,700 res-8 origins would need 11 GB.
ZONE_RES = {"large": 7}


def _demo_traffic(
    settings: Settings, progress: Any, storm: dict[str, Any] | None, size: str
) -> dict[str, Any]:
    """The morning peak, with the demo storm's road closures when there was one."""
    from twin.runs import traffic as traffic_runs

    params = traffic_runs.TrafficParams(
        flood_runs=(storm["run_id"],) if storm else (), zone_res=ZONE_RES.get(size, 8)
    )
    task = progress.add_task("morning peak (traffic)", total=100)
    return traffic_runs.run_traffic(
        settings, params, progress=lambda f: progress.update(task, completed=round(100 * f))
    )
