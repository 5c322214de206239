"""``twin city build``: a working twin from public files in one command (resumable)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer

from twin.cli.support import JsonOpt, fail, load_settings

city_app = typer.Typer(help="A real city from public data.", no_args_is_help=True)
Opt = typer.Option


@city_app.command("build")
def city_build(
    osm: Annotated[Path, Opt("--osm", help="OpenStreetMap extract (.osm.pbf).")],
    dem: Annotated[Path, Opt("--dem", help="DEM GeoTIFF (Copernicus GLO-30, SRTM, LiDAR).")],
    population: Annotated[
        Path | None, Opt("--population", help="Population grid GeoTIFF (WorldPop, GHS-POP).")
    ] = None,
    people: Annotated[
        Path | None, Opt("--people", help="Person records (CSV/Parquet), instead of a grid.")
    ] = None,
    job_rates: Annotated[
        Path | None, Opt("--job-rates", help="TOML [m2_per_job] overriding the job densities.")
    ] = None,
    name: Annotated[str | None, Opt(help="The city's name.")] = None,
    seed: Annotated[int, Opt(help="Seed of synthetic people and jobs.")] = 0,
    storm_years: Annotated[float, Opt(help="Return period of the design storm (years).")] = 50.0,
    storm_minutes: Annotated[float, Opt(help="Duration of the design storm (min).")] = 120.0,
    force: Annotated[bool, Opt("--force", help="Redo every stage, even finished ones.")] = False,
    serve: Annotated[bool, Opt("--serve", help="Serve the map when done.")] = False,
    port: Annotated[int | None, Opt(help="Port to serve on (TWIN_PORT).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """OSM + DEM + population grid -> people, jobs, storm, morning peak and risk map.

    Stages that finished with the same files are skipped on a rerun (--force redoes them).
    """
    from rich.console import Console
    from rich.table import Table

    from twin.db.engine import DatabaseNotConfiguredError
    from twin.ingest.report import IngestError
    from twin.runs.citybuild import STAGES, CityBuildError, CityInputs, build_city
    from twin.runs.flood import FloodRunError
    from twin.runs.traffic import TrafficRunError

    settings = load_settings()
    if port is not None:
        settings = settings.model_copy(update={"port": port})
    console = Console(stderr=True)
    inputs = CityInputs(
        osm=osm, dem=dem, population=population, people=people, job_rates=job_rates, name=name,
        seed=seed, storm_years=storm_years, storm_duration_s=storm_minutes * 60,
    )  # fmt: skip
    if not settings.database_url:
        from twin.db.engine import local_cluster

        local_cluster(settings).start()
    status = console.status("starting", spinner="dots")

    def notify(stage: str, what: str, detail: dict[str, Any]) -> None:
        n = STAGES.index(stage) + 1
        if what == "running":
            status.update(f"[{n}/{len(STAGES)}] {stage}")
        elif what == "skipped":
            console.print(f"[{n}/{len(STAGES)}] {stage}: done before, skipped")
        else:
            console.print(f"[{n}/{len(STAGES)}] {stage}: done in {detail['seconds']:.1f} s")

    try:
        with status:
            summary = build_city(
                settings, inputs, force=force, notify=notify,
                progress=lambda m, done=None, total=None: status.update(
                    m if not total else f"{m}: {done or 0:,} of {total:,}"
                ),
            )  # fmt: skip
    except (CityBuildError, IngestError, FloodRunError, TrafficRunError) as exc:
        fail(f"{exc} (the stages before it are kept: rerun to resume)")
    except (DatabaseNotConfiguredError, psycopg.OperationalError) as exc:
        fail(f"database: {exc}")
    url = f"http://{settings.host}:{settings.port}/map"
    summary["map"] = url
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        table = Table(title=f"city build ({summary['inputs']})")
        table.add_column("stage")
        table.add_column("result")
        for stage, detail in summary["stages"].items():
            shown = {k: v for k, v in detail.items() if k not in ("warnings", "layers")}
            table.add_row(stage, ", ".join(f"{k} {v}" for k, v in shown.items()))
        console.print(table)
        for w in summary["warnings"]:
            console.print(f"[yellow]warning:[/] {w}")
        console.print(f"map: {url}")
    if serve:
        from twin.cli.serve import run_server

        run_server(settings)
