"""``twin export``: a feature collection to GeoParquet, FlatGeobuf, GeoPackage or CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import psycopg
import typer

from twin.cli.support import JsonOpt, emit, fail, load_settings

#: The user a name stands for (as twin.access.tokens.PRINCIPAL_SQL, by name).
USER_SQL = (
    "SELECT u.id, u.name, u.role, u.disabled, u.scope,"
    " CASE WHEN cardinality(u.scope) = 0 THEN NULL ELSE"
    " (SELECT array_agg(DISTINCT s) FROM unnest(u.scope) r, twin.area_subtree(r) s) END"
    " FROM twin.app_user u WHERE u.name = %s"
)


def export(
    collection: Annotated[
        str, typer.Argument(help="A feature collection (buildings, roads, ...).")
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="parquet, fgb, gpkg or csv; for buildings also cityjson (CityJSON 2.0, LoD1) "
            "or cityjsonseq (CityJSONSeq).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="The file to write.")],
    bbox: Annotated[
        str | None, typer.Option(help="minlon,minlat,maxlon,maxlat (CRS84): rows intersecting.")
    ] = None,
    filter_text: Annotated[
        str | None,
        typer.Option(
            "--filter",
            help="A CQL2 filter (text, or JSON with --filter-lang "
            "cql2-json): the rows it matches, as filter= on the items route.",
        ),
    ] = None,
    filter_lang: Annotated[
        str | None, typer.Option("--filter-lang", help="cql2-text (default) or cql2-json.")
    ] = None,
    as_user: Annotated[
        str | None,
        typer.Option("--as-user", help="Export as this user (their scope and clearance); public."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a whole collection (or the part in --bbox, or matching --filter) as the caller
    would download it from
    /collections/{id}/items?f=..., with a progress bar; the export is audited."""
    from rich.progress import Progress

    from twin.access.principal import PUBLIC, Principal, act_as
    from twin.db.engine import DatabaseNotConfiguredError, database_url
    from twin.errors import InvalidParameterError
    from twin.exports import FORMATS
    from twin.exports.cityjson import FORMATS as CITY_FORMATS
    from twin.exports.run import export_sync
    from twin.tiles.catalog import LAYERS

    settings = load_settings()
    layer = LAYERS.get(collection)
    if layer is None or not layer.feature_collection:
        ids = ", ".join(lyr.id for lyr in LAYERS.values() if lyr.feature_collection)
        fail(f"COLLECTION: no collection {collection!r}; collections: {ids}", code=2)
    if fmt not in FORMATS and not (fmt in CITY_FORMATS and collection == "buildings"):
        fail(f"--format: one of {', '.join(FORMATS)} (and {', '.join(CITY_FORMATS)} for "
             "buildings)", code=2)  # fmt: skip
    params = {"bbox": bbox} if bbox else {}
    if filter_text is not None:
        params["filter"] = filter_text
    if filter_lang is not None:
        params["filter-lang"] = filter_lang
    try:
        with psycopg.connect(database_url(settings)) as conn:
            who = PUBLIC
            if as_user:
                row = conn.execute(USER_SQL, (as_user,)).fetchone()
                if row is None or row[3]:
                    fail(f"--as-user: no active user {as_user!r}", code=2)
                who = Principal(name=row[1], role=row[2], user_id=row[0],
                                scope=frozenset(int(a) for a in row[5] or ()),
                                scope_roots=tuple(int(a) for a in row[4] or ()))  # fmt: skip
            if not who.cleared_for(layer.label):
                fail(f"COLLECTION: {who.name} is not cleared for {layer.label} data", code=2)
            total = conn.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                (f"twin.{layer.table}",),
            ).fetchone()
            crs = None
            if fmt in CITY_FORMATS:
                meta = conn.execute("SELECT crs FROM twin.city_meta WHERE id = 1").fetchone()
                crs = settings.city_crs or (meta[0] if meta else None)
                if crs is None:
                    fail("--format: the twin has no city CRS yet (ingest a city first)", code=2)
            act_as(conn, who, settings.api_db_role)
            with Progress(disable=as_json) as bar:
                task = bar.add_task(f"{collection} -> {out.name}",
                                    total=max(int(total[0]), 0) if total else None)  # fmt: skip
                tally = export_sync(
                    conn, who, layer, fmt, out, params, k=settings.suppression_k,
                    progress=lambda n: bar.advance(task, n), crs=crs,
                )  # fmt: skip
    except InvalidParameterError as exc:
        fail(f"--{exc.parameter}: {str(exc).partition(': ')[2]}", code=2)
    except (DatabaseNotConfiguredError, psycopg.OperationalError) as exc:
        fail(f"database: {exc}")
    result = {"collection": collection, "format": fmt, "out": str(out), "rows": tally.rows,
              "bbox": tally.bbox, "as": who.name}  # fmt: skip
    emit(result, as_json, f"{tally.rows} {collection} rows written to {out} as {who.name}")
