"""SQL builders and readers of SensorThings requests: a resource path and its query options
-> one page of entities (with ``@iot.count``, ``@iot.nextLink`` and one level of ``$expand``).

Every statement is built from the entity tables of ``twin.sense.entities`` (our constants) and
the SQL of ``twin.sense.odata`` (bound parameters only); it runs on the caller's connection, so
row-level security and the caller's role apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from twin.sense.entities import SETS, EntitySet, Nav, Prop, render, select_sql
from twin.sense.odata import (
    ODataError,
    Options,
    parse_filter,
    parse_orderby,
    parse_select,
)

MAX_ID = 2**63 - 1
SEGMENT = re.compile(r"([A-Za-z]+)(?:\((\d{1,19})\))?")


class NotFound(LookupError):
    """The addressed entity does not exist (or the caller may not see it)."""


@dataclass(frozen=True)
class Path:
    """``Things``, ``Things(1)``, ``Things(1)/Datastreams``, ``Datastreams(3)/Thing``."""

    entity_set: EntitySet  # the set whose rows are answered
    ident: int | None  # a single entity of it
    parent_set: EntitySet | None = None
    parent_id: int | None = None
    nav: Nav | None = None

    @property
    def single(self) -> bool:
        return self.ident is not None or (self.nav is not None and not self.nav.many)


def parse_path(path: str) -> Path:
    segments = [s for s in path.strip("/").split("/") if s]
    if not segments or len(segments) > 2:
        raise NotFound(f"no resource {path!r} (Things, Things(1), Things(1)/Datastreams, ...)")
    parsed = []
    for seg in segments:
        m = SEGMENT.fullmatch(seg)
        if m is None:
            raise NotFound(f"no resource segment {seg!r}")
        ident = int(m.group(2)) if m.group(2) is not None else None
        if ident is not None and not 1 <= ident <= MAX_ID:
            raise NotFound(f"no entity {seg!r}")
        parsed.append((m.group(1), ident))
    name, ident = parsed[0]
    es = SETS.get(name)
    if es is None:
        raise NotFound(f"no entity set {name!r} (known: {', '.join(SETS)})")
    if len(parsed) == 1:
        return Path(es, ident)
    if ident is None:
        raise NotFound(f"{name}/{parsed[1][0]}: navigation needs an entity id, {name}(1)/...")
    nav_name, nav_ident = parsed[1]
    nav = es.nav(nav_name)
    if nav is None:
        raise NotFound(f"{es.singular} has no navigation property {nav_name!r} (known: "
                       f"{', '.join(n.name for n in es.navs)})")  # fmt: skip
    target = SETS[nav.target]
    if nav_ident is not None and not nav.many:
        raise NotFound(f"{nav_name} is a single entity: no ({nav_ident})")
    return Path(target, nav_ident, es, ident, nav)


def _props(es: EntitySet, select: list[str] | None) -> list[Prop]:
    if not select:
        return list(es.props)
    want = set(select)
    if es.name == "Observations" and "phenomenonTime" in want:
        want.add("phenomenonTimeEnd")
    return [p for p in es.props if p.name in want]


@dataclass
class Built:
    stmt: sql.Composed
    params: dict[str, Any]
    count_sql: sql.Composed | None = None


def _q(text: str) -> sql.SQL:
    """Trusted SQL text: column and join expressions declared in ``twin.sense.entities`` and
    the output of the OData compilers (``twin.sense.odata``), which emit only those
    expressions, operators and ``%(name)s`` placeholders; every value is a bound parameter."""
    return sql.SQL(text)


def build_select(
    es: EntitySet, opts: Options, *, nav: Nav | None = None, parents: list[int] | None = None,
    ident: int | None = None, top: int, per_parent: bool = False,
) -> Built:  # fmt: skip
    """SELECT of one page (``top + 1`` rows, to know whether a next page exists)."""
    select = parse_select(opts.select, es.selectable) if opts.select else None
    cols: list[sql.Composable] = [sql.SQL("t.id AS {}").format(sql.Identifier("id"))]
    cols += [
        sql.SQL("{} AS {}").format(_q(select_sql(p)), sql.Identifier(p.name))
        for p in _props(es, select)
    ]
    params: dict[str, Any] = {}
    where: list[sql.Composable] = []
    join = sql.SQL("")
    if nav is not None:
        join = _q(nav.join)
        cols.append(sql.SQL("{} AS {}").format(_q(nav.parent), sql.Identifier("_parent")))
        where.append(sql.SQL("{} = ANY(%(parents)s)").format(_q(nav.parent)))
        params["parents"] = parents or []
    if ident is not None:
        where.append(sql.SQL("t.id = %(ident)s"))
        params["ident"] = ident
    if opts.filter:
        cond, fparams = parse_filter(opts.filter, es.fields)
        where.append(_q(cond))
        params.update(fparams)
    order = parse_orderby(opts.orderby, es.fields) if opts.orderby else []
    order_parts: list[sql.Composable] = []
    for expr, desc in order:
        way = sql.SQL("DESC" if desc else "ASC")
        if expr.endswith(" NULLS LAST"):
            order_parts.append(
                sql.SQL("{} {} NULLS LAST").format(_q(expr[: -len(" NULLS LAST")]), way)
            )
        else:
            order_parts.append(sql.SQL("{} {}").format(_q(expr), way))
    order_parts.append(_q(es.default_order))
    order_sql = sql.SQL(", ").join(order_parts)
    where_sql = sql.SQL(" WHERE {}").format(sql.SQL(" AND ").join(where)) if where else sql.SQL("")
    table = sql.Identifier(*es.table.split("."))
    base = sql.SQL("FROM {} t {}{}").format(table, join, where_sql)
    count_sql = sql.SQL("SELECT count(*) {}").format(base)
    col_sql = sql.SQL(", ").join(cols)
    if per_parent:
        partition = _q(nav.parent) if nav else sql.SQL("t.id")
        stmt = sql.SQL(
            "SELECT * FROM (SELECT {cols}, row_number() OVER (PARTITION BY {part} ORDER BY {order})"
            " AS _rn {base}) x WHERE _rn > %(skip)s AND _rn <= %(skip)s + %(top)s"
            " ORDER BY _parent, _rn"
        ).format(cols=col_sql, part=partition, order=order_sql, base=base)
        params.update(skip=opts.skip, top=top)
        return Built(stmt, params, count_sql)
    stmt = sql.SQL("SELECT {} {} ORDER BY {} LIMIT %(limit)s OFFSET %(skip)s").format(
        col_sql, base, order_sql
    )
    params.update(limit=top + 1, skip=opts.skip)
    return Built(stmt, params, count_sql)


async def _rows(
    conn: AsyncConnection, stmt: sql.SQL | sql.Composed, params: dict[str, Any]
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(stmt, params)
        return await cur.fetchall()


async def _expand(
    conn: AsyncConnection, es: EntitySet, rows: list[dict[str, Any]], out: list[dict[str, Any]],
    opts: Options, base: str, page_size: int,
) -> None:  # fmt: skip
    ids = [r["id"] for r in rows]
    for item in opts.expand:
        nav = es.nav(item.name)
        if nav is None:
            known = ", ".join(n.name for n in es.navs)
            raise ODataError(
                "$expand", f"{es.singular} has no navigation property {item.name!r} ({known})"
            )
        target = SETS[nav.target]
        top = item.options.top if item.options.top is not None else page_size
        built = build_select(target, item.options, nav=nav, parents=ids,
                             top=top if nav.many else 1, per_parent=True)  # fmt: skip
        found: dict[int, list[dict[str, Any]]] = {}
        select = parse_select(item.options.select, target.selectable) if item.options.select \
            else None  # fmt: skip
        for r in await _rows(conn, built.stmt, built.params):
            found.setdefault(r["_parent"], []).append(render(target, r, base, select))
        for obj, row in zip(out, rows, strict=True):
            children = found.get(row["id"], [])
            if nav.many:
                obj[nav.name] = children
            elif children:
                obj[nav.name] = children[0]


async def read(
    conn: AsyncConnection, path: Path, opts: Options, *, base: str, page_size: int,
    self_url: str, raw: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """The answer to GET ``path`` with ``opts``: an entity, or a page of a collection."""
    es = path.entity_set
    select = parse_select(opts.select, es.selectable) if opts.select else None
    parents = [path.parent_id] if path.parent_id is not None else None
    if path.single:
        built = build_select(es, Options(select=opts.select), nav=path.nav, parents=parents,
                             ident=path.ident, top=1)  # fmt: skip
        rows = (await _rows(conn, built.stmt, built.params))[:1]
        if not rows:
            raise NotFound(f"no {es.singular} {path.ident if path.ident else ''} here".strip())
        out = [render(es, rows[0], base, select)]
        await _expand(conn, es, rows, out, opts, base, page_size)
        return out[0]
    if path.parent_set is not None:
        exists = await _rows(
            conn,
            sql.SQL("SELECT 1 AS x FROM {} t WHERE t.id = %(ident)s").format(
                sql.Identifier(*path.parent_set.table.split("."))
            ),
            {"ident": path.parent_id},
        )
        if not exists:
            raise NotFound(f"no {path.parent_set.singular} {path.parent_id}")
    top = opts.top if opts.top is not None else page_size
    built = build_select(es, opts, nav=path.nav, parents=parents, top=top)
    rows = await _rows(conn, built.stmt, built.params)
    more = len(rows) > top
    rows = rows[:top]
    answer: dict[str, Any] = {}
    if opts.count and built.count_sql:
        count_params = {k: v for k, v in built.params.items() if k not in ("limit", "skip")}
        answer["@iot.count"] = (await _rows(conn, built.count_sql, count_params))[0]["count"]
    if more:
        query = {k: v for k, v in raw.items() if k not in ("$top", "$skip")}
        query.update({"$top": str(top), "$skip": str(opts.skip + top)})
        answer["@iot.nextLink"] = f"{self_url}?{urlencode(query)}"
    values = [render(es, r, base, select) for r in rows]
    await _expand(conn, es, rows, values, opts, base, page_size)
    answer["value"] = values
    return answer
