"""``twin ingest ...``: load real data (OSM, vector files, people, population grids, rasters)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer

from twin.cli.support import JsonOpt
from twin.cli.support import fail as _fail
from twin.cli.support import load_settings as _settings
from twin.db.engine import DatabaseNotConfiguredError

ingest_app = typer.Typer(
    help=(
        "Load real data: OSM, vector files, people tables, population grids, rasters "
        "(one transaction each)."
    ),
    no_args_is_help=True,
)

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
    """Run ``fn(progress)`` with a line per stage (a bar with rows/s and an ETA where the stage
    counts rows), then print its report."""
    from twin.cli.progress import stage_bar
    from twin.ingest.report import IngestError

    try:
        with stage_bar(disable=as_json) as bar:
            report = fn(bar)
    except IngestError as exc:
        _fail(f"{exc} (nothing was loaded)")
    except (DatabaseNotConfiguredError, psycopg.OperationalError) as exc:
        _fail(f"database: {exc}")
    # New data changes the risk map and may fire rules; a broken layer file is only logged.
    # New buildings change it only where they stand: rescore those cells (twin.risk.incremental).
    from twin.alerts.refresh import refresh_quietly

    cells = getattr(report, "changed_cells", None) or None
    refresh_quietly(_settings(), cells=cells, rowset_cells=getattr(report, "rowset_cells", None))
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


@ingest_app.command("population")
def ingest_population_cmd(
    file: FileArg,
    year: Annotated[int | None, Opt(help="Year of the grid, kept in the source tag.")] = None,
    age_structure: Annotated[
        Path | None,
        Opt(help="CSV: age_band, share [, district]; default: a generic city structure."),
    ] = None,
    seed: Annotated[int, Opt(help="Seed of the draws (same seed, same people).")] = 0,
    crs: Annotated[str | None, Opt(help="CRS of a grid that declares none.")] = None,
    max_land_m: Annotated[
        float, Opt(help="Pixels without a building give their people to one this near (m).")
    ] = 500.0,
    replace_real: Annotated[
        bool, Opt("--replace-real", help="Drop real residents loaded by `twin ingest people`.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Synthetic residents from a population grid (WorldPop, GHS-POP; GeoTIFF).

    Pixel counts go to the buildings in each pixel by residential floor area, exactly.

    Load buildings first: `twin ingest osm` or `twin ingest buildings`.
    """
    from twin.ingest.population import ingest_population

    _run_ingest(
        lambda p: ingest_population(
            file,
            _settings(),
            year=year,
            age_structure=age_structure,
            seed=seed,
            crs=crs,
            max_land_m=max_land_m,
            replace_real=replace_real,
            progress=p,
        ),
        as_json,
    )


@ingest_app.command("jobs")
def ingest_jobs_cmd(
    rates: Annotated[
        Path | None, Opt(help="TOML with [m2_per_job]: floor area per job (m²) by use.")
    ] = None,
    seed: Annotated[int, Opt(help="Seed of the draws (same seed, same workplaces).")] = 0,
    mean_commute_km: Annotated[
        float, Opt(help="Mean straight-line commute (km) the gravity model aims for.")
    ] = 8.0,
    as_json: JsonOpt = False,
) -> None:
    """Workplaces for the residents, from non-residential floor area by use.

    Run after `twin ingest population` (or people without work addresses).
    """
    from twin.ingest.jobs import ingest_jobs

    _run_ingest(
        lambda p: ingest_jobs(
            _settings(), rates=rates, seed=seed, mean_commute_km=mean_commute_km, progress=p
        ),
        as_json,
    )


@ingest_app.command("bulkjoin")
def ingest_bulkjoin_cmd(
    points: Annotated[Path, typer.Argument(help="Parquet file of points (lon/lat columns).")],
    polygons: Annotated[Path, typer.Argument(help="GeoParquet (or GeoPackage...) of polygons.")],
    into: Annotated[
        str, Opt(help="Existing table 'schema.name' whose rows are replaced by the join.")
    ],
    x: Annotated[str, Opt(help="Longitude column of the points.")] = "lon",
    y: Annotated[str, Opt(help="Latitude column of the points.")] = "lat",
    polygon_id: Annotated[str, Opt(help="Id column of the polygons (and of the output).")] = "id",
    res: Annotated[int, Opt(help="H3 resolution of the output column cell (-1: none).")] = 9,
    key_res: Annotated[int, Opt(help="H3 resolution of the partitions.")] = 5,
    threads: Annotated[int | None, Opt(help="DuckDB threads and H3 workers.")] = None,
    memory_limit: Annotated[str | None, Opt(help="DuckDB memory cap, e.g. 4GB.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Join points (tens of millions) onto polygons and H3 cells in spatial partitions.

    Each point's columns but lon/lat, its ``cell`` and the id of the polygon holding it (empty
    outside all) are COPYed into a staging table, then swapped into --into in one transaction.
    Needs the [bulk] extra (DuckDB with its spatial extension).
    """
    from twin.cli.progress import stage_bar
    from twin.db.engine import database_url
    from twin.ingest.bulkjoin import JoinSpec, bulk_join
    from twin.ingest.report import IngestError

    spec = JoinSpec(x=x, y=y, polygon_id=polygon_id, res=None if res < 0 else res, key_res=key_res)
    url = database_url(_settings())
    try:
        with stage_bar(disable=as_json) as bar:
            report = bulk_join(
                points,
                polygons,
                into,
                url,
                spec,
                threads=threads,
                memory_limit=memory_limit,
                progress=bar,
            )
    except IngestError as exc:
        _fail(f"{exc} (nothing was loaded)")
    except (ValueError, RuntimeError) as exc:
        _fail(str(exc))
    except (DatabaseNotConfiguredError, psycopg.OperationalError) as exc:
        _fail(f"database: {exc}")
    _print_report(report, as_json)


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
