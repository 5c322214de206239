"""OGC API Features Part 3 filters: CQL2 (text or JSON) compiled to PostGIS conditions.

The filter is parsed by the ``cql2`` package (the reference grammar, cql2-text to the cql2-json
tree) and the tree is compiled here to :mod:`psycopg.sql`: properties become the catalog's own
SQL expressions (constants of :mod:`twin.tiles.catalog`, the same ones the response shows, so
a suppressed value filters as the NULL it is shown as), every literal a bound parameter, and
geometry literals ``ST_GeomFromGeoJSON`` of a bound text in SRID 4326. No request text is ever
pasted into SQL.

Queryables are the collection's published properties (plus ``geometry``): a column the
collection does not publish is no more queryable than one that does not exist, and both are a
400 naming the property. Everything malformed is a :class:`InvalidParameterError` naming
``filter``; nothing a caller types may reach the database as an error (no 5xx).

Supported: ``and or not``, ``= <> < <= > >=``, ``like`` (``%`` and ``_``, ``\\`` escapes),
``between``, ``in``, ``isNull``, ``casei``; ``s_intersects s_within s_contains s_disjoint
s_equals s_touches s_overlaps s_crosses`` with WKT (text), GeoJSON (JSON) or ``BBOX``;
``t_after t_before t_intersects t_disjoint t_during t_equals`` and comparisons on the
collection's time property, with ``TIMESTAMP``, ``DATE`` and ``INTERVAL`` literals.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import cql2 as cql2_parser
import shapely.geometry
import shapely.validation
from psycopg import sql

from twin.errors import InvalidParameterError
from twin.tiles.catalog import TileLayer

LANGS = ("cql2-text", "cql2-json")
#: Names of the languages in drafts of Part 3, still sent by clients (GDAL's OAPIF driver sends
#: ``filter-lang=cql-text`` with the simple comparisons CQL2 text shares with it).
LEGACY_LANGS = {"cql-text": "cql2-text"}
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
#: Longest filter accepted (a district polygon in WKT fits; a denial of service does not).
MAX_LENGTH = 16_384
#: Deepest nesting accepted. The parser is native code: nesting in the thousands crashes it,
#: so the text is checked before the parser sees it.
MAX_DEPTH = 64
P = "filter"
_NOTS = re.compile(r"(?i)(\bNOT\b[\s(]*){" + str(MAX_DEPTH) + ",}")
_MINUSES = re.compile(r"(-\s*){" + str(MAX_DEPTH) + ",}")

#: JSON Schema of each catalog field type (TileJSON's String/Number/Boolean).
_TYPES = {"String": "string", "Number": "number", "Boolean": "boolean"}
_CMP = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_FLIP = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_SPATIAL = {
    "s_intersects": "ST_Intersects", "s_within": "ST_Within", "s_contains": "ST_Contains",
    "s_disjoint": "ST_Disjoint", "s_equals": "ST_Equals", "s_touches": "ST_Touches",
    "s_overlaps": "ST_Overlaps", "s_crosses": "ST_Crosses",
}  # fmt: skip
_TEMPORAL = ("t_after", "t_before", "t_intersects", "t_disjoint", "t_during", "t_equals")
_GEOMETRY_FORMAT = {"polygon": "geometry-any", "line": "geometry-any", "point": "geometry-point"}


@dataclass(frozen=True)
class Queryable:
    """A property a filter may name: its SQL expression (a catalog constant) and its type
    (``string``, ``number``, ``boolean``, ``timestamp`` or ``geometry``)."""

    name: str
    expr: str
    type: str


@dataclass(frozen=True)
class Filter:
    """A compiled filter: the condition, its parameters (named ``f0``, ``f1``, ...) and a key
    that tells apart the tiles and pages of different filters (of the normalised tree)."""

    condition: sql.Composable
    params: dict[str, Any]
    key: str


def queryables(layer: TileLayer) -> dict[str, Queryable]:
    """The layer's queryables: its published properties, its time column, ``geometry``."""
    out = {"geometry": Queryable("geometry", "t.geom", "geometry")}
    for name, expr in layer.props.items():
        kind = _TYPES.get(layer.fields.get(name, "String"), "string")
        if name == layer.datetime_column:  # published as text, compared as the instant it is
            out[name] = Queryable(name, f"t.{layer.datetime_column}", "timestamp")
        else:
            out[name] = Queryable(name, expr, kind)
    return out


def queryables_schema(layer: TileLayer, schema_id: str) -> dict[str, Any]:
    """The queryables as JSON Schema (OGC API Features Part 3, 2020-12 draft)."""
    props: dict[str, Any] = {}
    for q in queryables(layer).values():
        if q.type == "geometry":
            props[q.name] = {
                "title": "Geometry", "format": _GEOMETRY_FORMAT.get(layer.geometry, "geometry-any"),
                "x-ogc-role": "primary-geometry",
            }  # fmt: skip
        elif q.type == "timestamp":
            props[q.name] = {"title": q.name, "type": "string", "format": "date-time",
                             "x-ogc-role": "primary-instant"}  # fmt: skip
        else:
            props[q.name] = {"title": q.name, "type": q.type}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id,
        "type": "object",
        "title": layer.title,
        "description": f"Queryables of {layer.id}: the properties a CQL2 filter may name.",
        "properties": props,
        "additionalProperties": False,
        # The list of drafts of Part 3, which GDAL's OAPIF driver reads to learn which
        # properties it may send to the server in a filter.
        "queryables": [
            {"id": name, "type": p.get("type", "geometry")} for name, p in props.items()
        ],
    }


# --- parsing --------------------------------------------------------------------------------


def _prescan(text: str) -> None:
    """Refuse what is too long or nested too deep for the native parser (outside quotes)."""
    if len(text) > MAX_LENGTH:
        raise InvalidParameterError(P, f"longer than {MAX_LENGTH} characters")
    if "\x00" in text:
        raise InvalidParameterError(P, "must not contain NUL (\\x00) characters")
    depth = deepest = 0
    quote: str | None = None
    for ch in text:
        if quote is not None:
            if ch == quote:
                quote = None  # '' (an escaped quote) closes and reopens: same result
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    if deepest > MAX_DEPTH or _NOTS.search(text) or _MINUSES.search(text):
        raise InvalidParameterError(P, f"nested deeper than {MAX_DEPTH} levels")


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:300] + " ..."


def parse(text: str, lang: str | None = None) -> Any:
    """The cql2-json tree of a filter in ``lang`` (default cql2-text)."""
    lang = LEGACY_LANGS.get(lang or "cql2-text", lang or "cql2-text")
    if lang not in LANGS:
        raise InvalidParameterError("filter-lang", f"must be one of {', '.join(LANGS)}")
    _prescan(text)
    try:
        if lang == "cql2-json":
            try:
                json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise InvalidParameterError(P, f"not JSON: {_short(exc)}") from None
            expr = cql2_parser.parse_json(text)
        else:
            expr = cql2_parser.parse_text(text)
        return expr.to_json()
    except InvalidParameterError:
        raise
    except RecursionError:
        raise InvalidParameterError(P, f"nested deeper than {MAX_DEPTH} levels") from None
    except Exception as exc:  # the parser's ParseError and ValidationError, and any other
        raise InvalidParameterError(P, f"not {lang}: {_short(exc)}") from None


# --- compiling ------------------------------------------------------------------------------


@dataclass
class _Operand:
    sql: sql.Composable
    type: str  # string number boolean timestamp geometry, or interval (temporal literals)
    prop: str | None = None  # the property, for messages
    bounds: tuple[datetime | None, datetime | None, bool] | None = None  # start, end, end open


class _Compiler:
    def __init__(self, layer: TileLayer) -> None:
        self.layer = layer
        self.q = queryables(layer)
        self.params: dict[str, Any] = {}

    def bind(self, value: Any, cast: str) -> sql.Composable:
        name = f"f{len(self.params)}"
        self.params[name] = value
        return sql.SQL("{}::" + cast).format(sql.Placeholder(name))

    # Conditions (boolean expressions)
    def cond(self, node: Any, depth: int = 0) -> sql.Composable:
        if depth > MAX_DEPTH:
            raise InvalidParameterError(P, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, bool):
            return sql.SQL("TRUE" if node else "FALSE")
        if isinstance(node, dict) and "property" in node:
            operand = self.operand(node)
            if operand.type != "boolean":
                raise InvalidParameterError(P, f"property {operand.prop!r} is not a boolean")
            return operand.sql
        if not isinstance(node, dict) or not isinstance(node.get("op"), str):
            raise InvalidParameterError(P, f"expected a condition, got {_show(node)}")
        op = node["op"].lower()
        args = node.get("args")
        if not isinstance(args, list):
            raise InvalidParameterError(P, f"{op}: args must be a list")
        if op in ("and", "or"):
            if len(args) < 2:
                raise InvalidParameterError(P, f"{op} needs at least two conditions")
            parts = [self.cond(a, depth + 1) for a in args]
            return sql.SQL("(") + sql.SQL(f" {op.upper()} ").join(parts) + sql.SQL(")")
        if op == "not":
            self.arity(op, args, 1)
            return sql.SQL("(NOT {})").format(self.cond(args[0], depth + 1))
        if op in _CMP:
            return self.compare(op, args)
        if op == "like":
            return self.like(args)
        if op == "between":
            return self.between(args)
        if op == "in":
            return self.in_(args)
        if op == "isnull":
            self.arity(op, args, 1)
            return sql.SQL("({} IS NULL)").format(self.operand(args[0]).sql)
        if op in _SPATIAL:
            return self.spatial(op, args)
        if op in _TEMPORAL:
            return self.temporal(op, args)
        raise InvalidParameterError(P, f"operator {node['op']!r} is not supported")

    def arity(self, op: str, args: list[Any], n: int) -> None:
        if len(args) != n:
            raise InvalidParameterError(P, f"{op} takes {n} argument(s), got {len(args)}")

    # Operands (scalar expressions)
    def operand(self, node: Any) -> _Operand:
        if isinstance(node, dict) and "property" in node:
            name = node["property"]
            q = self.q.get(name) if isinstance(name, str) else None
            if q is None:
                raise InvalidParameterError(
                    P, f"{name!r} is not a queryable of {self.layer.id} "
                    f"(queryables: {', '.join(self.q)})",
                )  # fmt: skip
            return _Operand(sql.SQL(f"({q.expr})"), q.type, prop=q.name)
        if isinstance(node, bool):
            return _Operand(self.bind(node, "boolean"), "boolean")
        if isinstance(node, int | float):
            return _Operand(self.bind(float(node), "float8"), "number")
        if isinstance(node, str):
            if "\x00" in node:
                raise InvalidParameterError(P, "strings must not contain NUL (\\x00)")
            return _Operand(self.bind(node, "text"), "string")
        if isinstance(node, dict) and ("timestamp" in node or "date" in node):
            start, end, open_end = _instant(node)
            return _Operand(self.bind(start, "timestamptz"), "timestamp",
                            bounds=(start, end, open_end))  # fmt: skip
        if isinstance(node, dict) and "interval" in node:
            return _Operand(sql.SQL("NULL"), "interval", bounds=_interval(node["interval"]))
        if isinstance(node, dict) and ("bbox" in node or "type" in node):
            return _Operand(self.geometry(node), "geometry")
        if isinstance(node, dict) and isinstance(node.get("op"), str):
            op = node["op"].lower()
            if op == "casei" and isinstance(node.get("args"), list) and len(node["args"]) == 1:
                inner = self.operand(node["args"][0])
                if inner.type != "string":
                    raise InvalidParameterError(P, "casei takes a string")
                return _Operand(sql.SQL("lower({})").format(inner.sql), "string", inner.prop)
            if op in ("+", "-", "*", "/", "%", "div", "^"):
                raise InvalidParameterError(P, "arithmetic is not supported")
            raise InvalidParameterError(P, f"function {node['op']!r} is not supported")
        if node is None:
            raise InvalidParameterError(P, "NULL is no value here: use IS NULL")
        raise InvalidParameterError(P, f"unexpected {_show(node)}")

    def geometry(self, node: dict[str, Any]) -> sql.Composable:
        if "bbox" in node:
            box = node["bbox"]
            if not (isinstance(box, list) and len(box) in (4, 6) and all(_finite(v) for v in box)):
                raise InvalidParameterError(P, "BBOX takes 4 (or 6) finite numbers")
            half = len(box) // 2
            minx, miny, maxx, maxy = box[0], box[1], box[half], box[half + 1]
            if minx > maxx or miny > maxy:
                raise InvalidParameterError(P, "BBOX: min must not exceed max")
            return sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, 4326)").format(
                self.bind(float(minx), "float8"), self.bind(float(miny), "float8"),
                self.bind(float(maxx), "float8"), self.bind(float(maxy), "float8"),
            )  # fmt: skip
        try:
            shape = shapely.geometry.shape(node)
        except Exception as exc:
            raise InvalidParameterError(P, f"not a geometry: {_short(exc)}") from None
        if shape.geom_type == "GeometryCollection":
            raise InvalidParameterError(P, "GEOMETRYCOLLECTION is not supported")
        if shape.is_empty or not all(math.isfinite(v) for v in shape.bounds):
            raise InvalidParameterError(P, "geometry must be non-empty with finite coordinates")
        if not shape.is_valid:
            reason = shapely.validation.explain_validity(shape)
            raise InvalidParameterError(P, f"invalid geometry: {reason}")
        text = json.dumps(shapely.geometry.mapping(shape))
        return sql.SQL("ST_SetSRID(ST_GeomFromGeoJSON({}), 4326)").format(self.bind(text, "text"))

    def pair(self, op: str, args: list[Any]) -> tuple[_Operand, _Operand]:
        self.arity(op, args, 2)
        return self.operand(args[0]), self.operand(args[1])

    def compare(self, op: str, args: list[Any]) -> sql.Composable:
        a, b = self.pair(op, args)
        _same(op, a, b)
        if b.type == "interval" or a.type == "interval":
            raise InvalidParameterError(P, f"{op} compares instants: use T_ functions on intervals")
        return sql.SQL("({} " + _CMP[op] + " {})").format(a.sql, b.sql)

    def like(self, args: list[Any]) -> sql.Composable:
        a, b = self.pair("like", args)
        if a.type != "string" or b.type != "string":
            raise InvalidParameterError(P, f"LIKE takes strings{_of(a, b)}")
        pattern = args[1]
        if isinstance(pattern, dict) and str(pattern.get("op", "")).lower() == "casei":
            pattern = pattern["args"][0]
        if not isinstance(pattern, str):  # a column's value could end in an escape
            raise InvalidParameterError(P, "the pattern of LIKE must be a string literal")
        if (len(pattern) - len(pattern.rstrip("\\"))) % 2:
            raise InvalidParameterError(P, "a LIKE pattern must not end with the escape \\")
        return sql.SQL("({} LIKE {})").format(a.sql, b.sql)

    def between(self, args: list[Any]) -> sql.Composable:
        self.arity("between", args, 3)
        a, lo, hi = (self.operand(x) for x in args)
        if a.type != "number" or lo.type != "number" or hi.type != "number":
            raise InvalidParameterError(P, f"BETWEEN takes numbers{_of(a, lo, hi)}")
        return sql.SQL("({} BETWEEN {} AND {})").format(a.sql, lo.sql, hi.sql)

    def in_(self, args: list[Any]) -> sql.Composable:
        self.arity("in", args, 2)
        a = self.operand(args[0])
        values = args[1]
        if not isinstance(values, list) or not values:
            raise InvalidParameterError(P, "IN takes a non-empty list")
        if a.type == "number" and all(isinstance(v, int | float) and not isinstance(v, bool)
                                      for v in values):  # fmt: skip
            return sql.SQL("({} = ANY({}))").format(a.sql, self.bind([float(v) for v in values],
                                                                     "float8[]"))  # fmt: skip
        if a.type == "string" and all(isinstance(v, str) and "\x00" not in v for v in values):
            return sql.SQL("({} = ANY({}))").format(a.sql, self.bind(list(values), "text[]"))
        # Anything else (casei values, booleans, instants): one comparison per value.
        parts = []
        for v in values:
            b = self.operand(v)
            _same("in", a, b)
            parts.append(sql.SQL("{} = {}").format(a.sql, b.sql))
        return sql.SQL("(") + sql.SQL(" OR ").join(parts) + sql.SQL(")")

    def spatial(self, op: str, args: list[Any]) -> sql.Composable:
        a, b = self.pair(op, args)
        if a.type != "geometry" or b.type != "geometry":
            raise InvalidParameterError(P, f"{op.upper()} takes geometries{_of(a, b)}")
        return sql.SQL(_SPATIAL[op] + "({}, {})").format(a.sql, b.sql)

    def temporal(self, op: str, args: list[Any]) -> sql.Composable:
        a, b = self.pair(op, args)
        if a.bounds is not None and b.bounds is None:
            a, b = b, a  # the literal second: T_AFTER(x, p) reads as T_BEFORE(p, x)
            op = {"t_after": "t_before", "t_before": "t_after"}.get(op, op)
        if a.type != "timestamp" or a.prop is None or b.bounds is None:
            raise InvalidParameterError(
                P, f"{op.upper()} takes a time property and a TIMESTAMP, DATE or INTERVAL"
                f"{_of(a, b)}",
            )  # fmt: skip
        start, end, open_end = b.bounds
        p = a.sql
        if op == "t_after":
            if end is None:
                return sql.SQL("FALSE")
            return sql.SQL("({} " + (">=" if open_end else ">") + " {})").format(
                p, self.bind(end, "timestamptz")
            )
        if op == "t_before":
            if start is None:
                return sql.SQL("FALSE")
            return sql.SQL("({} < {})").format(p, self.bind(start, "timestamptz"))
        if op == "t_equals" and not (start is not None and start == end and not open_end):
            return sql.SQL("FALSE")  # an instant equals only an instant
        strict = op == "t_during"  # strictly inside the interval
        parts: list[sql.Composable] = [sql.SQL("{} IS NOT NULL").format(p)]
        if start is not None:
            parts.append(sql.SQL("{} " + (">" if strict else ">=") + " {}").format(
                p, self.bind(start, "timestamptz")))  # fmt: skip
        if end is not None:
            parts.append(sql.SQL("{} " + ("<" if strict or open_end else "<=") + " {}").format(
                p, self.bind(end, "timestamptz")))  # fmt: skip
        inside = sql.SQL(" AND ").join(parts)
        if op == "t_disjoint":  # an unknown instant is disjoint from nothing
            return sql.SQL("({} IS NOT NULL AND NOT ({}))").format(p, inside)
        return sql.SQL("({})").format(inside)  # t_intersects, t_equals of instants


def _show(node: Any) -> str:
    text = json.dumps(node, default=str)
    return text if len(text) <= 80 else text[:80] + " ..."


def _of(*operands: _Operand) -> str:
    named = [f"{o.prop!r} is {_a(o.type)}" for o in operands if o.prop is not None]
    return f" ({', '.join(named)})" if named else ""


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _same(op: str, a: _Operand, b: _Operand) -> None:
    if a.type != b.type:
        who = a.prop or b.prop
        what = f"property {who!r} is {_a(a.type if a.prop else b.type)}" if who else "operands"
        raise InvalidParameterError(
            P, f"{op}: wrong type: {what}, compared with {_a(b.type if a.prop else a.type)}"
        )
    if a.type == "geometry":
        raise InvalidParameterError(P, f"{op} does not compare geometries: use S_ functions")


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _parse_instant(text: Any, *, kind: str) -> tuple[datetime, datetime, bool]:
    """(start, end, end open) of a TIMESTAMP (an instant) or a DATE (its UTC day)."""
    if not isinstance(text, str):
        raise InvalidParameterError(P, f"{kind.upper()} takes a string")
    try:
        if kind == "date":
            d = date.fromisoformat(text)
            start = datetime.combine(d, time(), tzinfo=UTC)
            return start, start + timedelta(days=1), True
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, OverflowError):
        raise InvalidParameterError(P, f"{text!r} is not an RFC 3339 {kind}") from None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return t, t, False


def _instant(node: dict[str, Any]) -> tuple[datetime, datetime, bool]:
    if "timestamp" in node:
        return _parse_instant(node["timestamp"], kind="timestamp")
    return _parse_instant(node["date"], kind="date")


def _interval(ends: Any) -> tuple[datetime | None, datetime | None, bool]:
    if not isinstance(ends, list) or len(ends) != 2:
        raise InvalidParameterError(P, "INTERVAL takes two ends")
    out: list[tuple[datetime, datetime, bool] | None] = []
    for end in ends:
        if end == "..":
            out.append(None)
        elif isinstance(end, str):
            out.append(_parse_instant(end, kind="date" if len(end) == 10 else "timestamp"))
        elif isinstance(end, dict) and ("timestamp" in end or "date" in end):
            out.append(_instant(end))
        else:
            raise InvalidParameterError(P, f"not an interval end: {_show(end)}")
    lo, hi = out
    if lo is not None and hi is not None and lo[0] > hi[1]:
        raise InvalidParameterError(P, "INTERVAL: start after end")
    return (lo[0] if lo else None, hi[1] if hi else None, bool(hi and hi[2]))


def compile_filter(
    layer: TileLayer, text: str, lang: str | None = None, *, crs: str | None = None
) -> Filter:
    """The condition (over table alias ``t``) of a CQL2 filter on one collection."""
    if crs not in (None, CRS84):
        raise InvalidParameterError("filter-crs", f"only {CRS84} is supported")
    tree = parse(text, lang)
    compiler = _Compiler(layer)
    condition = compiler.cond(tree)
    key = hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()
    return Filter(condition=condition, params=compiler.params, key=key[:16])
