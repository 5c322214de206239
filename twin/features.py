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
    # The layer's property expressions and time column are constants of the catalog
    # (twin/tiles/catalog.py), never request text: sql.SQL() is safe for them. A property's name
    # only selects an expression; every request value is a bound parameter.
    parts: list[sql.Composable] = []
    values: dict[str, Any] = {}
    if "bbox" in params:
        minx, miny, maxx, maxy = parse_bbox(params["bbox"])
        envelope = "ST_MakeEnvelope(%(minx)s, %(miny)s, %(maxx)s, %(maxy)s, 4326)"
        parts.append(sql.SQL("ST_Intersects(t.geom, " + envelope + ")"))
        values.update(minx=minx, miny=miny, maxx=maxx, maxy=maxy)
    if "datetime" in params:
        if layer.datetime_column is None:
            raise InvalidParameterError("datetime", f"collection {layer.id} has no time")
        start, end = parse_datetime(params["datetime"])
        col = sql.SQL("t.") + sql.SQL(layer.datetime_column)
        if start is not None:
            parts.append(sql.SQL("{} >= %(t0)s").format(col))
            values["t0"] = start
        if end is not None:
            parts.append(sql.SQL("{} <= %(t1)s").format(col))
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
        parts.append(
            sql.SQL("({})::text = {}").format(sql.SQL(layer.props[name]), sql.Placeholder(f"p{i}"))
        )
        values[f"p{i}"] = value
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


def _select(layer: TileLayer) -> sql.Composed:
    """SELECT list and FROM of a collection's features.

    The id and property expressions are SQL snippets declared as constants in the catalog
    (twin/tiles/catalog.py), never request text: sql.SQL() is safe for them; property names are
    quoted as identifiers."""
    props = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(sql.SQL(expr), sql.Identifier(name))
        for name, expr in layer.props.items()
    )
    return sql.SQL(
        "SELECT {fid} AS fid, ST_AsGeoJSON(t.geom, 7) AS geometry, {props} FROM {table} t"
    ).format(fid=sql.SQL(layer.id_expr), props=props, table=sql.Identifier("twin", layer.table))


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
        _select(layer)
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
    # id_expr: a catalog constant (see _select); the id is bound.
    q = _select(layer) + sql.SQL(" WHERE {} = %(fid)s").format(sql.SQL(layer.id_expr))
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
