"""Writing ingested rows into the model, inside the caller's transaction.

``--replace`` deletes the layer's rows first; ``--append`` adds to them and refuses ids already
loaded. Either way cells, admin areas and (for buildings) addresses are filled in, the layer's
data version is bumped and the cell statistics of the affected cells are recomputed, all in
the same transaction as the rows themselves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import shapely
from psycopg import sql
from pyproj import Transformer

from twin import grid
from twin.city.address import composes, normalize, normalize_name
from twin.city.cells import polygon_cells
from twin.city.load import as_multipolygons, bump_layer_versions, ewkb
from twin.db.copy import copy_rows
from twin.ingest.report import IngestError, Progress, quiet

UNNAMED_ROAD = "未命名道路"


def reserve_ids(conn: psycopg.Connection, table: str, n: int) -> np.ndarray:
    """``n`` fresh ids for ``table`` (the table is locked against concurrent writers)."""
    conn.execute(
        sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(sql.Identifier("twin", table))
    )
    row = conn.execute(
        sql.SQL(
            "SELECT greatest(coalesce(max(id), 0), (SELECT last_value FROM {seq})) FROM {t}"
        ).format(seq=sql.Identifier("twin", f"{table}_id_seq"), t=sql.Identifier("twin", table))
    ).fetchone()
    start = int(row[0]) + 1 if row else 1
    conn.execute("SELECT setval(%s, %s)", (f"twin.{table}_id_seq", start + max(n, 1) - 1))
    return np.arange(start, start + n, dtype=np.int64)


def metric_area(geoms: np.ndarray) -> np.ndarray:
    """Areas (m2) in the equal-area EPSG:6933."""
    tr = Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True)
    return np.asarray(
        shapely.area(
            shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
        )
    )


def metric_length(geoms: np.ndarray, crs: str) -> np.ndarray:
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return np.asarray(
        shapely.length(
            shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
        )
    )


def _existing_cells(conn: psycopg.Connection, table: str, column: str = "cell") -> list[int]:
    q = sql.SQL("SELECT DISTINCT {c} FROM {t} WHERE {c} IS NOT NULL").format(
        c=sql.Identifier(column), t=sql.Identifier("twin", table)
    )
    return [r[0] for r in conn.execute(q)]


def _refuse_loaded(conn: psycopg.Connection, table: str, frame: pd.DataFrame, path: Path) -> None:
    if frame.get("source_id") is None or frame.source_id.isna().all():
        return
    ids = frame.source_id.astype(str).tolist()
    q = sql.SQL("SELECT source_id FROM {} WHERE source_id = ANY(%s)").format(
        sql.Identifier("twin", table)
    )
    clash = {r[0] for r in conn.execute(q, (ids,))}
    if clash:
        rows = frame._row[frame.source_id.astype(str).isin(clash)].tolist()
        raise IngestError(
            path, f"ids already loaded in {table} (use --replace to reload)", rows=rows
        )


def _set_area(conn: psycopg.Connection, table: str, lo: int, hi: int, point_sql: str) -> None:
    """area_id = the grid patch holding each new row's point."""
    conn.execute(
        sql.SQL(
            "UPDATE {t} x SET area_id = a.id FROM twin.admin_area a "
            "WHERE x.id BETWEEN %s AND %s AND a.level = 'grid' AND ST_Intersects(a.geom, {pt})"
        ).format(t=sql.Identifier("twin", table), pt=sql.SQL(point_sql)),
        (lo, hi),
    )


def lookup_polygons(conn: psycopg.Connection, query: str, pts: np.ndarray) -> pd.array:
    """Id of the first polygon (from ``query``: id, WKB) holding each point, or NA."""
    rows = conn.execute(query).fetchall()
    out = pd.array(np.zeros(len(pts), dtype=np.int64), dtype="Int64")
    out[:] = pd.NA
    if not rows or not len(pts):
        return out
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    tree = shapely.STRtree(shapely.from_wkb([bytes(r[1]) for r in rows]))
    hit_pt, hit_poly = tree.query(pts, predicate="intersects")
    first_pt, first = np.unique(hit_pt, return_index=True)
    out[first_pt] = ids[hit_poly[first]]
    return out


def write_buildings(
    conn: psycopg.Connection,
    frame: pd.DataFrame,
    *,
    mode: str,
    res: int,
    path: Path,
    dedupe: bool = False,
    progress: Progress = quiet,
) -> list[int]:
    """Buildings and one address each, written once: area, parcel and address are resolved
    before the COPY (updating rows afterwards would rewrite them and all their indexes).

    ``progress`` sees each stage, and the COPY of buildings then addresses row by row."""
    affected: list[int] = []
    if mode == "replace":
        affected += _existing_cells(conn, "building")
        conn.execute("DELETE FROM twin.address WHERE building_id IS NOT NULL")
        conn.execute("DELETE FROM twin.building")
    else:
        _refuse_loaded(conn, "building", frame, path)
    n = len(frame)
    progress("locating buildings (cells, areas, parcels)")
    geoms = as_multipolygons(frame.geometry)
    pts = shapely.point_on_surface(geoms)
    cells = grid.points_to_cells(shapely.get_x(pts), shapely.get_y(pts), res)
    area = lookup_polygons(
        conn, "SELECT id, ST_AsBinary(geom) FROM twin.admin_area WHERE level = 'grid'", pts
    )
    parcel = lookup_polygons(conn, "SELECT id, ST_AsBinary(geom) FROM twin.parcel", pts)
    progress("addressing buildings")
    texts, norm, components = _addresses(conn, pts, frame, path, dedupe=dedupe)
    ids = reserve_ids(conn, "building", len(frame))
    aids = reserve_ids(conn, "address", len(frame))
    # Both rows reference each other: check the keys at commit.
    conn.execute(
        "SET CONSTRAINTS twin.fk_address_building_id_building,"
        " twin.fk_building_address_id_address DEFERRED"
    )
    out = pd.DataFrame({
        "id": ids, "source_id": frame.source_id, "use": frame.use, "height_m": frame.height_m,
        "height_source": frame.height_source, "floors": frame.floors,
        "footprint_m2": np.round(metric_area(geoms), 1), "address_id": aids, "parcel_id": parcel,
        "area_id": area, "cell": cells, "geom": ewkb(geoms),
    })  # fmt: skip
    done = 0

    def sent(k: int, stage: str) -> None:
        nonlocal done
        done += k
        progress(stage, done, 2 * n)

    progress("writing buildings and addresses", 0, 2 * n)
    copy_rows(conn, "twin.building", list(out.columns), out,
              on_rows=lambda k: sent(k, "writing buildings and addresses"))  # fmt: skip
    addr = pd.DataFrame({
        "id": aids, "text": texts, "normalized": norm,
        "components": [
            c if isinstance(c, str) else json.dumps(c, ensure_ascii=False) for c in components
        ],
        "building_id": ids, "area_id": area, "cell": cells, "geom": ewkb(pts),
    })  # fmt: skip
    copy_rows(conn, "twin.address", list(addr.columns), addr,
              on_rows=lambda k: sent(k, "writing buildings and addresses"))  # fmt: skip
    bump_layer_versions(conn, ("building", "address", "cell_stats"))
    return affected + cells.tolist()


def _addresses(
    conn: psycopg.Connection, pts: np.ndarray, frame: pd.DataFrame, path: Path, *, dedupe: bool
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any] | str]]:
    """Text, normal form and components of one standard address per new building: the file's
    where it has one, otherwise generated along the nearest named road (numbers continue after
    those the road already has).

    With ``dedupe`` (OSM, where several buildings often share one address), repeats get a
    building number: '...12号' -> '...12号2幢'; otherwise a repeated address is an error.
    """
    n = len(pts)
    given = frame.get("address_text")
    raw = pd.Series(given if given is not None else [""] * n).fillna("").astype(str)
    raw = raw.where(raw.str.strip().str.lower() != "none", "")
    # A plain object array: assigning row by row into an Arrow-backed Series is very slow.
    texts = np.asarray(raw.to_numpy(), dtype=object)
    has = np.array([t.strip() != "" for t in texts], dtype=bool)
    # Components as dicts, or as ready JSON text for generated ones (a million dumps add up).
    components: list[dict[str, Any] | str] = [{"given": True} for _ in range(n)]
    if (~has).any():
        gen = np.flatnonzero(~has)
        roads = conn.execute(
            "SELECT name, ST_AsBinary(geom) FROM twin.road_link WHERE coalesce(name, '') <> ''"
        ).fetchall()
        if roads:
            tree = shapely.STRtree(shapely.from_wkb([bytes(r[1]) for r in roads]))
            nearest = tree.query_nearest(pts[gen], all_matches=False)[1]
            road = np.asarray([roads[i][0] for i in nearest], dtype=object)
        else:
            road = np.full(len(gen), UNNAMED_ROAD, dtype=object)
        start: dict[str, int] = dict(
            conn.execute(
                "SELECT components->>'road', max((components->>'number')::int) FROM twin.address "
                "WHERE components ? 'number' GROUP BY 1"
            ).fetchall()
        )
        order = pd.DataFrame({"road": road, "i": np.arange(len(gen))}).sort_values(["road", "i"])
        seq = order.groupby("road").cumcount().to_numpy() + 1
        number = np.empty(len(gen), dtype=np.int64)
        number[order.i.to_numpy()] = seq + np.array([start.get(r) or 0 for r in order.road])
        # Normal form of "<road><n>号" is the road's normal form + "<n>号" (digits and 号 are
        # already normal), so each road is normalised once, not every address.
        road_norm = {r: normalize_name(r) for r in set(road)}
        road_json = {r: json.dumps(r, ensure_ascii=False) for r in set(road)}
        gen_norm = np.empty(len(gen), dtype=object)
        for k, (r, num) in enumerate(zip(road, number, strict=True)):
            texts[gen[k]] = f"{r}{num}号"
            key = road_norm[r]
            gen_norm[k] = f"{key}{num}号" if composes(key) else normalize(texts[gen[k]])
            components[gen[k]] = f'{{"road": {road_json[r]}, "number": {num}, "generated": true}}'
    norm_arr = np.empty(n, dtype=object)
    if (~has).any():
        norm_arr[~has] = gen_norm
    norm_arr[has] = [normalize(t) for t in texts[has]]
    norm = pd.Series(norm_arr)
    if dedupe:
        rank = norm.groupby(norm).cumcount().to_numpy()
        for i in np.flatnonzero(rank > 0):
            texts[i] = f"{texts[i]}{rank[i] + 1}幢"
            comp = components[i]
            base = json.loads(comp) if isinstance(comp, str) else comp
            components[i] = {**base, "building_no": int(rank[i] + 1)}
        norm = pd.Series([normalize(t) for t in texts])
    dup = norm.duplicated(keep=False)
    if dup.any():
        raise IngestError(
            path, "duplicate addresses", rows=frame._row[dup.to_numpy()].tolist(), field="address"
        )
    clash = {
        r[0]
        for r in conn.execute(
            "SELECT normalized FROM twin.address WHERE normalized = ANY(%s)", (norm.tolist(),)
        )
    }
    if clash:
        rows = frame._row[norm.isin(clash).to_numpy()].tolist()
        raise IngestError(path, "address already in the address base", rows=rows, field="address")
    return texts, norm.to_numpy(), components


def write_parcels(
    conn: psycopg.Connection, frame: pd.DataFrame, *, mode: str, res: int, path: Path
) -> list[int]:
    affected: list[int] = []
    if mode == "replace":
        affected += _existing_cells(conn, "parcel_cell")
        conn.execute("DELETE FROM twin.parcel")
    elif frame.code.notna().any():
        clash = {
            r[0]
            for r in conn.execute(
                "SELECT code FROM twin.parcel WHERE code = ANY(%s)",
                (frame.code.astype(str).tolist(),),
            )
        }
        if clash:
            raise IngestError(
                path,
                "parcel codes already loaded (use --replace)",
                rows=frame._row[frame.code.isin(clash)].tolist(),
            )
    geoms = as_multipolygons(frame.geometry)
    ids = reserve_ids(conn, "parcel", len(frame))
    out = pd.DataFrame(
        {
            "id": ids,
            "code": frame.code,
            "land_use": frame.land_use,
            "area_m2": np.round(metric_area(geoms), 1),
            "geom": ewkb(geoms),
        }
    )
    copy_rows(conn, "twin.parcel", list(out.columns), out)
    _set_area(conn, "parcel", int(ids[0]), int(ids[-1]), "ST_PointOnSurface(x.geom)")
    pc = polygon_cells(ids, geoms, res).rename(columns={"id": "parcel_id"})
    copy_rows(
        conn,
        "twin.parcel_cell",
        ["parcel_id", "res", "cell", "share"],
        pc[["parcel_id", "res", "cell", "share"]],
    )
    bump_layer_versions(conn, ("parcel", "cell_stats"))
    return affected + pc.cell.tolist()


def write_roads(
    conn: psycopg.Connection, frame: pd.DataFrame, *, mode: str, res: int, crs: str, path: Path
) -> list[int]:
    """Lines become directed links between their end points; end points within 1e-7 degrees
    (about 1 cm) are one node, existing nodes included, so new roads join the network."""
    affected: list[int] = []
    if mode == "replace":
        affected += _existing_cells(conn, "road_link")
        conn.execute("DELETE FROM twin.road_link")
        conn.execute("DELETE FROM twin.road_node")
    else:
        _refuse_loaded(conn, "road_link", frame, path)
    geoms = shapely.line_merge(frame.geometry.to_numpy())
    multi = shapely.get_type_id(geoms) != 1
    if multi.any():
        raise IngestError(
            path,
            "multi-part line that does not join into one line",
            rows=frame._row[multi].tolist(),
        )
    first = shapely.get_point(geoms, 0)
    last = shapely.get_point(geoms, -1)

    def key(p: np.ndarray) -> list[tuple[float, float]]:
        xs, ys = np.round(shapely.get_x(p), 7), np.round(shapely.get_y(p), 7)
        return [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]

    a_keys, b_keys = key(first), key(last)
    loops = np.array([a == b for a, b in zip(a_keys, b_keys, strict=True)])
    if loops.any():
        raise IngestError(
            path,
            "closed line (starts where it ends): split it in two",
            rows=frame._row[loops].tolist(),
        )
    known: dict[tuple[float, float], int] = {
        (round(x, 7), round(y, 7)): i
        for i, x, y in conn.execute("SELECT id, ST_X(geom), ST_Y(geom) FROM twin.road_node")
    }
    new_keys = sorted({k for k in a_keys + b_keys if k not in known})
    node_ids = reserve_ids(conn, "road_node", len(new_keys)) if new_keys else np.empty(0, np.int64)
    known.update(zip(new_keys, node_ids.tolist(), strict=True))
    if new_keys:
        xy = np.asarray(new_keys)
        nodes = pd.DataFrame(
            {
                "id": node_ids,
                "cell": grid.points_to_cells(xy[:, 0], xy[:, 1], res),
                "geom": ewkb(shapely.points(xy[:, 0], xy[:, 1])),
            }
        )
        copy_rows(conn, "twin.road_node", list(nodes.columns), nodes)
    length = metric_length(geoms, crs)
    mids = shapely.line_interpolate_point(geoms, 0.5, normalized=True)
    cells = grid.points_to_cells(shapely.get_x(mids), shapely.get_y(mids), res)
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(frame.itertuples()):
        a, b = known[a_keys[i]], known[b_keys[i]]
        base = {
            "road_class": r.road_class,
            "name": r.name,
            "lanes": r.lanes,
            "free_speed_kmh": r.free_speed_kmh,
            "capacity_vph": r.lanes * r.capacity_per_lane,
            "length_m": round(float(length[i]), 2),
            "source_id": r.source_id,
            "cell": cells[i],
        }
        if r.oneway >= 0:
            rows.append({**base, "from_node": a, "to_node": b, "geom": geoms[i]})
        if r.oneway <= 0:
            rows.append({**base, "from_node": b, "to_node": a, "geom": geoms[i].reverse()})
    links = pd.DataFrame(rows)
    links.insert(0, "id", reserve_ids(conn, "road_link", len(links)))
    links["geom"] = ewkb(links.geom.to_numpy())
    copy_rows(conn, "twin.road_link", list(links.columns), links)
    bump_layer_versions(conn, ("road_link", "road_node", "cell_stats"))
    return affected + cells.tolist()


def write_events(
    conn: psycopg.Connection, frame: pd.DataFrame, *, mode: str, res: int, path: Path
) -> list[int]:
    affected: list[int] = []
    if mode == "replace":
        affected += _existing_cells(conn, "event")
        conn.execute("DELETE FROM twin.event WHERE sim_run_id IS NULL")
    else:
        _refuse_loaded(conn, "event", frame, path)
    geoms = frame.geometry.to_numpy()
    ids = reserve_ids(conn, "event", len(frame))
    cells = grid.points_to_cells(shapely.get_x(geoms), shapely.get_y(geoms), res)
    out = pd.DataFrame(
        {
            "id": ids,
            "source_id": frame.source_id,
            "type": frame.type,
            "severity": frame.severity,
            "status": frame.status,
            "source": frame.source,
            "occurred_at": frame.occurred_at,
            "cell": cells,
            "geom": ewkb(geoms),
        }
    )
    copy_rows(conn, "twin.event", list(out.columns), out)
    _set_area(conn, "event", int(ids[0]), int(ids[-1]), "x.geom")
    bump_layer_versions(conn, ("event", "cell_stats"))
    return affected + cells.tolist()


def write_hazard_sites(
    conn: psycopg.Connection, frame: pd.DataFrame, *, mode: str, res: int
) -> list[int]:
    """Hazard sites (points): category, name, hazard class, source id."""
    affected: list[int] = []
    if mode == "replace":
        affected += _existing_cells(conn, "hazard_site")
        conn.execute("DELETE FROM twin.hazard_site")
    if not len(frame):
        return affected
    geoms = frame.geometry.to_numpy()
    ids = reserve_ids(conn, "hazard_site", len(frame))
    cells = grid.points_to_cells(shapely.get_x(geoms), shapely.get_y(geoms), res)
    out = pd.DataFrame(
        {
            "id": ids,
            "category": frame.category,
            "name": frame.name,
            "hazard_class": frame.hazard_class,
            "source_id": frame.source_id,
            "cell": cells,
            "geom": ewkb(geoms),
        }
    )
    copy_rows(conn, "twin.hazard_site", list(out.columns), out)
    bump_layer_versions(conn, ("hazard_site", "cell_stats"))
    return affected + cells.tolist()
