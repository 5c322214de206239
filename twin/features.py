"""OGC API Features (Part 1 Core, GeoJSON) over the catalog layers: the queries.

Collections are the tile layers marked as feature collections; people are never one. Filters:
``bbox`` (CRS84), ``datetime`` (instant or interval, on layers with a time column), simple
equality on any property of the layer, and a CQL2 ``filter`` (Part 3, :mod:`twin.cql2`).
Values are bound; identifiers come from the catalog.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from twin import cql2
from twin.city.areas import parse_bbox
from twin.errors import InvalidParameterError
from twin.tiles.catalog import LAYERS, TileLayer

RESERVED = {"bbox", "limit", "offset", "datetime", "f", "bbox-crs", "crs", "filter", "filter-lang",
            "filter-crs"}  # fmt: skip
MAX_LIMIT = 10_000
#: PostgreSQL's OFFSET is a BIGINT.
MAX_OFFSET = 2**63 - 1


def collections() -> list[TileLayer]:
    return [layer for layer in LAYERS.values() if layer.feature_collection]


def _instant(text: str, param: str) -> datetime | None:
    if text in ("", ".."):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameterError(param, f"{text!r} is not an RFC 3339 date-time") from None


def parse_datetime(text: str) -> tuple[datetime | None, datetime | None]:
    """'t' -> (t, t); 'a/b', '../b', 'a/..' -> interval (open ends None)."""
    if "/" in text:
        a, _, b = text.partition("/")
        return _instant(a, "datetime"), _instant(b, "datetime")
    t = _instant(text, "datetime")
    return t, t


def where_clause(layer: TileLayer, params: dict[str, str]) -> tuple[sql.Composable, dict[str, Any]]:
    """`` WHERE ...`` (or nothing) of the request's filters (``bbox``, ``datetime``, property
    equality, CQL2 ``filter``), and their bound values. Shared by the pages and the exports."""
    conds: list[str] = []
    values: dict[str, Any] = {}
    if "bbox" in params:
        minx, miny, maxx, maxy = parse_bbox(params["bbox"])
        conds.append(
            "ST_Intersects(t.geom, ST_MakeEnvelope(%(minx)s, %(miny)s, %(maxx)s, %(maxy)s, 4326))"
        )
        values.update(minx=minx, miny=miny, maxx=maxx, maxy=maxy)
    if "datetime" in params:
        if layer.datetime_column is None:
            raise InvalidParameterError("datetime", f"collection {layer.id} has no time")
        start, end = parse_datetime(params["datetime"])
        col = f"t.{layer.datetime_column}"
        if start is not None:
            conds.append(f"{col} >= %(t0)s")
            values["t0"] = start
        if end is not None:
            conds.append(f"{col} <= %(t1)s")
            values["t1"] = end
    for i, (name, value) in enumerate(sorted(params.items())):
        if name in RESERVED:
            continue
        if name not in layer.props:
            raise InvalidParameterError(
                name, f"not a property of {layer.id} (filterable: {', '.join(layer.props)})"
            )
        if "\x00" in value:  # PostgreSQL text cannot hold it
            raise InvalidParameterError(name, "must not contain NUL (\\x00) characters")
        conds.append(f"({layer.props[name]})::text = %(p{i})s")
        values[f"p{i}"] = value
    parts: list[sql.Composable] = [sql.SQL(c) for c in conds]
    if "filter" in params:
        flt = cql2.compile_filter(
            layer, params["filter"], params.get("filter-lang"), crs=params.get("filter-crs")
        )
        parts.append(flt.condition)
        values.update(flt.params)
    elif "filter-lang" in params or "filter-crs" in params:
        cql2.compile_filter(layer, "TRUE", params.get("filter-lang"), crs=params.get("filter-crs"))
    if not parts:
        return sql.SQL(""), values
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts), values


def _select(layer: TileLayer) -> str:
    """SELECT list from the catalog's constant expressions (no request text reaches it)."""
    props = ", ".join(f'{expr} AS "{name}"' for name, expr in layer.props.items())
    return (
        f"SELECT {layer.id_expr} AS fid, ST_AsGeoJSON(t.geom, 7) AS geometry, {props}"  # noqa: S608
        " FROM {table} t"
    )


def _feature(row: dict[str, Any]) -> dict[str, Any]:
    fid = row.pop("fid")
    geometry = json.loads(row.pop("geometry"))
    return {"type": "Feature", "id": fid, "geometry": geometry, "properties": row}


async def items(
    conn: AsyncConnection,
    layer: TileLayer,
    params: dict[str, str],
    *,
    limit: int,
    offset: int,
    k: int,
) -> tuple[list[dict[str, Any]], int]:
    """One page of features and the number matched."""
    where, values = where_clause(layer, params)
    values.update(k=k, limit=limit, offset=offset)
    table = sql.Identifier("twin", layer.table)
    # `where` holds conditions built from the catalog with %(name)s placeholders for values.
    page = (
        sql.SQL(_select(layer)).format(table=table)
        + where
        + sql.SQL(" ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s").format(
            order=sql.SQL(layer.id_expr)
        )
    )
    count = sql.SQL("SELECT count(*) AS n FROM {table} t").format(table=table) + where
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(count, values)
        n = await cur.fetchone()
        await cur.execute(page, values)
        rows = await cur.fetchall()
    return [_feature(r) for r in rows], int(n["n"]) if n else 0


async def item(
    conn: AsyncConnection, layer: TileLayer, fid: int, *, k: int
) -> dict[str, Any] | None:
    q = sql.SQL(_select(layer) + f" WHERE {layer.id_expr} = %(fid)s").format(
        table=sql.Identifier("twin", layer.table)
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q, {"fid": fid, "k": k})
        row = await cur.fetchone()
    return _feature(row) if row else None


async def extent(conn: AsyncConnection, layer: TileLayer) -> dict[str, Any]:
    cur = await conn.execute(
        sql.SQL(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) AS e FROM {}) x"
        ).format(sql.Identifier("twin", layer.table))
    )
    row = await cur.fetchone()
    bbox = [list(row)] if row and row[0] is not None else [[-180.0, -90.0, 180.0, 90.0]]
    out: dict[str, Any] = {
        "spatial": {"bbox": bbox, "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}
    }
    if layer.datetime_column:
        cur = await conn.execute(
            sql.SQL("SELECT min({c}), max({c}) FROM {t}").format(
                c=sql.Identifier(layer.datetime_column), t=sql.Identifier("twin", layer.table)
            )
        )
        t = await cur.fetchone()
        if t and t[0] is not None:
            out["temporal"] = {"interval": [[t[0].isoformat(), t[1].isoformat()]]}
    return out
