"""Writers: Arrow record batches in, one file out, batch by batch.

GeoParquet 1.1 with pyarrow (WKB geometry, ``geo`` metadata, a ``bbox`` covering column, row
groups of :data:`ROW_GROUP_ROWS` rows gathered from the batches); FlatGeobuf (with its packed
Hilbert R-tree index) and GeoPackage through GDAL (pyogrio's ``write_arrow`` pulls the batches
from a stream); CSV with WKT through pyarrow's incremental CSV writer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import shapely

from twin.errors import InvalidParameterError

#: Rows per GeoParquet row group: the batches (a few MB of Arrow each) are gathered up to this
#: many, so that a reader's bbox pruning sees row groups of a useful size.
ROW_GROUP_ROWS = 20_000


@dataclass(frozen=True)
class ExportFormat:
    name: str
    media_type: str
    suffix: str


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("parquet", "application/vnd.apache.parquet", ".parquet"),
        ExportFormat("fgb", "application/flatgeobuf", ".fgb"),
        ExportFormat("gpkg", "application/geopackage+sqlite3", ".gpkg"),
        ExportFormat("csv", "text/csv; charset=utf-8", ".csv"),
    )
}


@dataclass
class Tally:
    """Rows written and their bounds (xmin, ymin, xmax, ymax), for the audit and the report."""

    rows: int = 0
    bounds: list[float] = field(default_factory=lambda: [math.inf, math.inf, -math.inf, -math.inf])

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        if batch.num_rows:
            box = batch.column("bbox")
            for i, (name, pick) in enumerate(
                (("xmin", min), ("ymin", min), ("xmax", max), ("ymax", max))
            ):
                v = pa.compute.min_max(box.field(name))["min" if pick is min else "max"].as_py()
                self.bounds[i] = pick(self.bounds[i], v)

    @property
    def bbox(self) -> list[float] | None:
        return self.bounds if self.rows else None


def geo_metadata(geometry_type: str) -> dict[str, object]:
    """GeoParquet 1.1 ``geo`` metadata: WKB in ``geometry``, CRS84 (no ``crs`` key: the
    default), the covering column ``bbox``."""
    kinds = {"polygon": ["Polygon", "MultiPolygon"], "line": ["LineString", "MultiLineString"],
             "point": ["Point", "MultiPoint"]}  # fmt: skip
    return {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": kinds.get(geometry_type, []),
                "covering": {"bbox": {c: ["bbox", c] for c in ("xmin", "ymin", "xmax", "ymax")}},
            }
        },
    }


def _counted(batches: Iterable[pa.RecordBatch], tally: Tally) -> Iterator[pa.RecordBatch]:
    for b in batches:
        tally.add(b)
        yield b


def _parquet(batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: Path, gtype: str) -> None:
    meta = {b"geo": json.dumps(geo_metadata(gtype)).encode()}
    with pq.ParquetWriter(path, schema.with_metadata(meta), compression="zstd") as w:
        held: list[pa.RecordBatch] = []
        rows = 0
        for b in batches:
            held.append(b)
            rows += b.num_rows
            if rows >= ROW_GROUP_ROWS:
                w.write_table(pa.Table.from_batches(held, schema), row_group_size=rows)
                held, rows = [], 0
        if rows:
            w.write_table(pa.Table.from_batches(held, schema), row_group_size=rows)


def _no_bbox(schema: pa.Schema) -> pa.Schema:
    return schema.remove(schema.get_field_index("bbox"))


def _csv(batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: Path, _: str) -> None:
    out = _no_bbox(schema).set(1, pa.field("geometry", pa.string()))
    with pa_csv.CSVWriter(str(path), out) as w:
        for b in batches:
            wkt = shapely.to_wkt(shapely.from_wkb(b.column("geometry").to_numpy(False)), -1)
            cols = [b.column(0), pa.array(wkt, pa.string()), *b.columns[3:]]
            w.write_batch(pa.RecordBatch.from_arrays(cols, schema=out))


def _gdal(driver: str, options: dict[str, str]) -> Callable[..., None]:
    def write_with_gdal(
        batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: Path, gtype: str
    ) -> None:
        import pyogrio

        geom = pa.field("geometry", pa.binary(), metadata={"ARROW:extension:name": "geoarrow.wkb"})
        out = _no_bbox(schema).set(1, geom)
        stream = pa.RecordBatchReader.from_batches(
            out,
            (pa.RecordBatch.from_arrays([b.column(0), b.column(1), *b.columns[3:]], schema=out)
             for b in batches),
        )  # fmt: skip
        kinds = {"polygon": "Unknown", "line": "Unknown", "point": "Unknown"}
        pyogrio.write_arrow(
            stream, str(path), layer=path.stem, driver=driver, geometry_name="geometry",
            geometry_type=kinds.get(gtype, "Unknown"), crs="EPSG:4326", layer_options=options,
        )  # fmt: skip

    return write_with_gdal


_WRITERS: dict[str, Callable[..., None]] = {
    "parquet": _parquet,
    "csv": _csv,
    "fgb": _gdal("FlatGeobuf", {"SPATIAL_INDEX": "YES"}),
    "gpkg": _gdal("GPKG", {"SPATIAL_INDEX": "YES", "FID": "fid"}),
}


def write(
    fmt: str,
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    path: Path,
    *,
    geometry_type: str = "polygon",
) -> Tally:
    """Write ``batches`` (schema of twin.exports.source.arrow_schema) to ``path`` as ``fmt``."""
    if fmt not in _WRITERS:
        raise InvalidParameterError("f", f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    tally = Tally()
    _WRITERS[fmt](_counted(batches, tally), schema, path, geometry_type)
    return tally
