"""Partitioned bulk joins: tens of millions of points onto polygons and H3 cells, out of core.

A join too large for one process (a region's residents onto parcels, a country's building
centroids onto parcels) runs in DuckDB with its spatial extension, in spatially sorted
partitions:

1. *Stage.* The points file (Parquet or GeoParquet read as plain columns) is read in batches;
   each point gets its H3 cell at ``res`` (``twin.grid.points_to_cells``, every core) and a
   partition key, its parent cell at ``key_res`` (coarse: res 5 cells are about 250 km²).
   Each batch is sorted by key and appended to an on-disk DuckDB table, so a partition is a few
   runs of row groups that DuckDB's zone maps find without scanning the rest (no global sort).
2. *Join.* Per partition, the points are joined to the polygons whose bounding boxes meet the
   partition's extent, with DuckDB's ``SPATIAL_JOIN`` (an R-tree on the polygon side, on all
   threads). A point belongs to exactly one partition, so every (point, polygon) pair comes out
   exactly once: the union of the partitions is the single-process ``geopandas.sjoin``
   (``how="left", predicate="intersects"``).
3. *Write.* Each partition is COPYed into an unlogged staging table beside the target; at the end
   one transaction replaces the target's rows with the staging rows and drops it. Readers see
   the old rows until that commit; on any error the staging table is dropped and the target is
   as it was. The target keeps its indexes, grants, policies and keys.

Memory stays bounded by ``memory_limit`` (DuckDB spills to ``tmp_dir``) plus one batch and one
partition's result in Python.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from psycopg import sql

from twin import grid
from twin.db.copy import copy_arrow
from twin.ingest.report import IngestError, Progress, Report, quiet

# Internal column names in DuckDB (user columns keep theirs; these cannot clash with them).
_X, _Y, _KEY, _POLY = "__bj_x", "__bj_y", "__bj_key", "__bj_poly"

_CREATE_POLYS = (
    "CREATE TABLE polys AS SELECT poly AS __bj_poly, ST_GeomFromWKB(wkb) AS geom, "
    "xmin, ymin, xmax, ymax FROM polys_in"
)
_INSERT_POINTS = "INSERT INTO pts SELECT * FROM batch"
_PARTITIONS = (
    "SELECT __bj_key, count(*), min(__bj_x), min(__bj_y), max(__bj_x), max(__bj_y) "
    "FROM pts GROUP BY __bj_key ORDER BY __bj_key"
)
_JOIN_PARTITION = (
    "SELECT p.* EXCLUDE (__bj_x, __bj_y, __bj_key), q.__bj_poly "
    "FROM (SELECT * FROM pts WHERE __bj_key = $key) p "
    "LEFT JOIN (SELECT __bj_poly, geom FROM polys "
    "WHERE xmax >= $x0 AND xmin <= $x1 AND ymax >= $y0 AND ymin <= $y1) q "
    "ON ST_Intersects(q.geom, ST_Point(p.__bj_x, p.__bj_y))"
)


@dataclass(frozen=True)
class JoinSpec:
    """What to join: column names in the files and the resolutions.

    Attributes
    ----------
    x, y
        Point longitude and latitude columns (degrees, EPSG:4326).
    polygon_id
        The polygons' id column; the output column of the same name holds the id of the
        polygon containing the point (null for a point in none).
    res
        H3 resolution of the output column ``cell``; ``None`` for no cell column.
    key_res
        H3 resolution of the partition key (0..15, not finer than ``res``).
    """

    x: str = "x"
    y: str = "y"
    polygon_id: str = "id"
    res: int | None = 9
    key_res: int = 5


def _connect(tmp_dir: Path, *, threads: int | None, memory_limit: str | None) -> Any:
    import duckdb  # optional dependency: the [bulk] extra

    config: dict[str, Any] = {"temp_directory": str(tmp_dir / "spill")}
    if threads is not None:
        config["threads"] = threads
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(str(tmp_dir / "bulkjoin.duckdb"), config=config)
    _load_spatial(con)
    return con


def _load_spatial(con: Any) -> None:
    """LOAD DuckDB's spatial extension: from the duckdb-extension-spatial wheel when installed
    (machines without access to DuckDB's extension site), else from DuckDB's own install."""
    try:
        import duckdb_extension_spatial as wheel
    except ImportError:
        wheel = None
    if wheel is not None:
        found = sorted(Path(wheel.__file__).parent.glob("extensions/*/spatial.duckdb_extension"))
        if found:
            # LOAD takes no bound parameter: quote the wheel's own path as a literal.
            con.execute("LOAD '" + str(found[-1]).replace("'", "''") + "'")
            return
    try:
        con.execute("LOAD spatial")
    except Exception as exc:  # duckdb.IOException / CatalogException
        raise RuntimeError(
            "DuckDB's spatial extension is not installed: pip install 'twin[bulk]' "
            "(duckdb and duckdb-extension-spatial of the same version)"
        ) from exc


def _read_polygons(path: Path, polygon_id: str) -> pa.Table:
    """Polygons as (poly, wkb, bbox) in EPSG:4326; errors name the file and field."""
    try:
        polys = (
            gpd.read_parquet(path)
            if path.suffix.lower() in (".parquet", ".geoparquet")
            else gpd.read_file(path)
        )
    except (OSError, ValueError) as exc:
        raise IngestError(path, f"cannot read polygons: {exc}") from exc
    if polygon_id not in polys.columns:
        raise IngestError(path, "no such column", field=polygon_id)
    if polys.crs is not None and polys.crs.to_epsg() != 4326:
        polys = polys.to_crs("EPSG:4326")
    geoms = polys.geometry.to_numpy()
    kinds = shapely.get_type_id(geoms)
    bad = np.flatnonzero(~np.isin(kinds, (3, 6)))
    if bad.size:
        raise IngestError(path, "not a Polygon or MultiPolygon", rows=list(bad + 1))
    bounds = shapely.bounds(geoms)
    return pa.table(
        {
            "poly": pa.array(polys[polygon_id].to_numpy()),
            "wkb": pa.array(shapely.to_wkb(geoms), type=pa.binary()),
            "xmin": bounds[:, 0],
            "ymin": bounds[:, 1],
            "xmax": bounds[:, 2],
            "ymax": bounds[:, 3],
        }
    )


def _point_batches(
    path: Path, spec: JoinSpec, *, batch_rows: int, workers: int | None
) -> Iterator[pa.Table]:
    """Batches of points with their cell and partition key; errors name the file, row, field."""
    try:
        source = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise IngestError(path, f"cannot read points as Parquet: {exc}") from exc
    names = source.schema_arrow.names
    for col in (spec.x, spec.y):
        if col not in names:
            raise IngestError(path, "no such column", field=col)
    taken = {_X, _Y, _KEY, _POLY, spec.polygon_id} | ({"cell"} if spec.res is not None else set())
    for col in names:
        if col in taken and col not in (spec.x, spec.y):
            raise IngestError(path, "column name is taken by the join's output", field=col)
    start = 0
    for batch in source.iter_batches(batch_size=batch_rows):
        table = pa.Table.from_batches([batch])
        x = table.column(spec.x).to_numpy(zero_copy_only=False).astype(np.float64)
        y = table.column(spec.y).to_numpy(zero_copy_only=False).astype(np.float64)
        for col, v, lim in ((spec.x, x, 180.0), (spec.y, y, 90.0)):
            bad = np.flatnonzero(~(np.isfinite(v) & (np.abs(v) <= lim)))
            if bad.size:
                rows = list(start + bad[:100] + 1)
                raise IngestError(path, f"not a coordinate within ±{lim:g}°", rows=rows, field=col)
        if spec.res is not None:
            cells = grid.points_to_cells(x, y, spec.res, workers=workers)
            key = grid.parent(cells, spec.key_res)
        else:
            key = grid.points_to_cells(x, y, spec.key_res, workers=workers)
        rest = table.drop_columns([spec.x, spec.y])
        out = rest.append_column(_X, pa.array(x)).append_column(_Y, pa.array(y))
        if spec.res is not None:
            out = out.append_column("cell", pa.array(cells))
        out = out.append_column(_KEY, pa.array(key))
        # Sorted by key within the batch: each partition is a few runs of row groups that
        # DuckDB's zone maps find, without a global sort of all points.
        yield out.take(pa.array(np.argsort(key, kind="stable")))
        start += table.num_rows


def partitioned_join(
    points: Path,
    polygons: Path,
    spec: JoinSpec,
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    tmp_dir: Path | None = None,
    batch_rows: int = 2_000_000,
    progress: Progress = quiet,
) -> Iterator[pa.Table]:
    """Join points to the polygons containing them and to their cells, one partition at a time.

    Parameters
    ----------
    points
        Parquet file with columns ``spec.x``, ``spec.y`` (degrees) and any others, which are
        carried through.
    polygons
        GeoParquet (or any file geopandas reads) of Polygons/MultiPolygons with
        ``spec.polygon_id``.
    spec
        Column names and resolutions (:class:`JoinSpec`).
    threads, memory_limit
        DuckDB's threads and memory cap (e.g. ``"4GB"``), keyword-only; ``None``: DuckDB's
        defaults (every core, 80 % of memory). ``threads`` also sets the H3 workers.
    tmp_dir
        Where the staged points and spills go (a fresh temporary folder by default).
    batch_rows
        Points read at a time.

    Yields
    ------
    pyarrow.Table per partition: the points' own columns but ``x``/``y``, ``cell`` (int64, when
    ``spec.res`` is set) and ``spec.polygon_id`` (null outside every polygon). A point inside
    several (overlapping) polygons gives one row for each.

    Raises
    ------
    IngestError
        naming the file, row and field of bad input.
    """
    if not 0 <= spec.key_res <= (spec.res if spec.res is not None else grid.MAX_RES):
        raise ValueError(f"key_res must be in 0..{spec.res}, got {spec.key_res}")
    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix="twin-bulkjoin-") as tmp:
        con = _connect(Path(tmp), threads=threads, memory_limit=memory_limit)
        try:
            progress("reading polygons")
            con.register("polys_in", _read_polygons(polygons, spec.polygon_id))
            con.execute(_CREATE_POLYS)
            con.unregister("polys_in")
            first = True
            read = 0
            for batch in _point_batches(points, spec, batch_rows=batch_rows, workers=threads):
                con.register("batch", batch)
                if first:
                    con.execute("CREATE TABLE pts AS SELECT * FROM batch LIMIT 0")
                    first = False
                con.execute(_INSERT_POINTS)
                con.unregister("batch")
                read += batch.num_rows
                progress("staging points", read)
            if first:
                return
            parts = con.execute(_PARTITIONS).fetchall()
            for i, (key, _n, x0, y0, x1, y1) in enumerate(parts, 1):
                progress("joining partitions", i - 1, len(parts))
                params = {"key": key, "x0": x0, "y0": y0, "x1": x1, "y1": y1}
                joined = con.execute(_JOIN_PARTITION, params).to_arrow_table()
                yield joined.rename_columns(
                    [spec.polygon_id if c == _POLY else c for c in joined.column_names]
                )
        finally:
            con.close()


def write_joined(
    conn: psycopg.Connection, table: str, parts: Iterator[pa.Table], *, progress: Progress = quiet
) -> int:
    """COPY partitions into a staging table beside ``table`` ('schema.name'), then replace
    ``table``'s rows with them in one transaction. Returns the rows written.

    ``conn`` must not be inside a transaction. On any error the staging table is dropped and
    ``table`` is left as it was.
    """
    schema, _, name = table.rpartition(".")
    target = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    staging_name = f"{name}__bulkjoin_staging"
    staging = sql.Identifier(schema, staging_name) if schema else sql.Identifier(staging_name)
    staging_text = f"{schema}.{staging_name}" if schema else staging_name
    with conn.transaction():
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(staging))
        conn.execute(
            sql.SQL("CREATE UNLOGGED TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(staging, target)
        )
    written = 0
    columns: list[str] | None = None
    try:
        for part in parts:
            columns = columns or part.column_names
            with conn.transaction():
                copy_arrow(conn, staging_text, columns, part)
            written += part.num_rows
            progress("copying joined rows", written)
        progress("swapping in")
        cols = sql.SQL(", ").join(map(sql.Identifier, columns or []))
        with conn.transaction():
            conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(target))
            conn.execute(sql.SQL("DELETE FROM {}").format(target))
            if columns:
                conn.execute(
                    sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                        target, cols, cols, staging
                    )
                )
            conn.execute(sql.SQL("DROP TABLE {}").format(staging))
    except BaseException:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        with conn.transaction():
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(staging))
        raise
    return written


def bulk_join(
    points: Path,
    polygons: Path,
    into: str,
    database_url: str,
    spec: JoinSpec,
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    progress: Progress = quiet,
    connect: Callable[[str], psycopg.Connection] = psycopg.connect,
) -> Report:
    """Partitioned join of ``points`` onto ``polygons`` (and cells), written into ``into``."""
    t0 = time.perf_counter()
    report = Report(path=str(points), kind="bulkjoin")
    counted = {"partitions": 0, "read": 0}

    def counting(parts: Iterator[pa.Table]) -> Iterator[pa.Table]:
        for part in parts:
            counted["partitions"] += 1
            yield part

    parts = partitioned_join(
        points, polygons, spec, threads=threads, memory_limit=memory_limit, progress=progress
    )
    with connect(database_url) as conn:
        conn.autocommit = True
        try:
            report.loaded = write_joined(conn, into, counting(parts), progress=progress)
        except psycopg.errors.UndefinedTable as exc:
            raise IngestError(points, f"target table {into!r} does not exist") from exc
        except (psycopg.errors.UndefinedColumn, psycopg.errors.DatatypeMismatch) as exc:
            raise IngestError(points, f"the join's columns do not fit {into!r}: {exc}") from exc
    report.read = pq.ParquetFile(points).metadata.num_rows
    report.details = {"into": into, "partitions": counted["partitions"], "polygons": str(polygons)}
    report.seconds = time.perf_counter() - t0
    return report
