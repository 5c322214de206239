"""The export query of a collection and its rows as Arrow record batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
from psycopg import sql

from twin import features
from twin.tiles.catalog import TileLayer

#: Rows fetched from the server-side cursor per round trip (and per Arrow batch). A chunk is
#: held as Python tuples until it becomes a batch, at several hundred bytes a row above its
#: Arrow size; 5,000 rows keep that near 20 MB (benchmarks/bench_export_rss.py) and cost a
#: round trip per 5,000 rows. GeoParquet row groups are larger (twin.exports.writers).
CHUNK_ROWS = 5_000

#: PostgreSQL type oid -> Arrow type (anything else travels as text).
_ARROW: dict[int, pa.DataType] = {
    16: pa.bool_(), 20: pa.int64(), 21: pa.int64(), 23: pa.int64(), 700: pa.float64(),
    701: pa.float64(), 1700: pa.float64(),
}  # fmt: skip
#: Leading columns of every export row, before the layer's properties.
FIXED = ("fid", "geometry", "xmin", "ymin", "xmax", "ymax")


def export_query(
    layer: TileLayer, params: dict[str, str], *, k: int
) -> tuple[sql.Composed, dict[str, Any]]:
    """SELECT fid, WKB geometry, its bounds and the layer's properties, Hilbert-ordered
    (``ORDER BY geom`` sorts along a Hilbert curve in PostGIS >= 3.1).

    ``params``: the items route's filters (:func:`twin.features.where_clause`: ``bbox``,
    ``datetime``, property equality, CQL2 ``filter``).
    """
    where, values = features.where_clause(layer, params)
    values["k"] = k
    # The id and property expressions are the catalog's constants (twin/tiles/catalog.py).
    props = [
        sql.SQL("{} AS {}").format(sql.SQL(expr), sql.Identifier(name))
        for name, expr in layer.props.items()
    ]
    fid = sql.SQL(layer.id_expr)
    query = (
        sql.SQL(
            "SELECT {fid} AS fid, ST_AsBinary(t.geom) AS geometry,"
            " ST_XMin(t.geom::box3d) AS xmin, ST_YMin(t.geom::box3d) AS ymin,"
            " ST_XMax(t.geom::box3d) AS xmax, ST_YMax(t.geom::box3d) AS ymax{props}"
            " FROM {table} t"
        ).format(
            fid=fid,
            props=sql.SQL("").join(sql.SQL(", ") + p for p in props),
            table=sql.Identifier("twin", layer.table),
        )
        + where
        + sql.SQL(" ORDER BY t.geom, {}").format(fid)
    )
    return query, values


def arrow_schema(names: Sequence[str], oids: Sequence[int]) -> pa.Schema:
    fields = [
        pa.field("fid", pa.int64()),
        pa.field("geometry", pa.binary()),
        pa.field("bbox", pa.struct([(c, pa.float64()) for c in FIXED[2:]])),
    ]
    fields += [
        pa.field(n, _ARROW.get(o, pa.string())) for n, o in zip(names[6:], oids[6:], strict=True)
    ]
    return pa.schema(fields)


def to_batch(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.RecordBatch:
    cols = list(zip(*rows, strict=True)) if rows else [()] * (len(schema) + 3)
    bbox = pa.StructArray.from_arrays(
        [pa.array(cols[i], pa.float64()) for i in range(2, 6)], names=list(FIXED[2:])
    )
    arrays = [pa.array(cols[0], pa.int64()), pa.array(cols[1], pa.binary()), bbox]
    arrays += [
        pa.array([_plain(v) for v in cols[i + 3]], schema.field(i).type)
        for i in range(3, len(schema))
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _plain(v: Any) -> Any:
    return float(v) if isinstance(v, Decimal) else v


def chunks(
    fetch: Callable[[int], Sequence[Sequence[Any]]], schema: pa.Schema, size: int = CHUNK_ROWS
) -> Iterator[pa.RecordBatch]:
    """Record batches from ``fetch(size)`` (a cursor's fetchmany) until it comes back empty.

    The rows of a chunk are let go before the batch is handed on, so that the next fetch does
    not hold two chunks of Python rows at once."""
    while True:
        rows = fetch(size)
        if not rows:
            return
        batch = to_batch(rows, schema)
        del rows
        yield batch
