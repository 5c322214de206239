"""`twin ingest people FILE.csv|.parquet`: residents located by standard address or lon/lat.

Only the fields of the allow-list below are collected. A file with any other column (names, ID
numbers, phone numbers, ...) is refused before its data is read: what the rules do not allow is
not collected at all, not even in passing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow.parquet as pq
import shapely

from twin import grid
from twin.city import districts
from twin.city.address import normalize
from twin.city.cells import refresh_cell_stats
from twin.db.copy import copy_rows
from twin.db.engine import database_url
from twin.db.models.city import AGE_BANDS, RESIDENT_TYPES
from twin.ingest.report import IngestError, Progress, Report, quiet
from twin.ingest.write import reserve_ids
from twin.settings import Settings

# The allow-list: every column a people file may have (left) -> the field it feeds (right).
ALLOWED = {
    "age_band": "age_band",
    "resident_type": "resident_type",
    "home_address": "home_address",
    "address": "home_address",
    "home_lon": "home_lon",
    "home_lat": "home_lat",
    "lon": "home_lon",
    "lat": "home_lat",
    "home_floor": "home_floor",
    "lives_alone": "lives_alone",
    "work_address": "work_address",
    "work_lon": "work_lon",
    "work_lat": "work_lat",
}
NEAREST_BUILDING_M = 30.0


def header(path: Path) -> list[str]:
    """Column names only: the data of a refused file is never read."""
    if not path.is_file():
        raise IngestError(path, "file not found")
    if path.stat().st_size == 0:
        raise IngestError(path, "file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return list(pd.read_csv(path, nrows=0).columns)
        if suffix == ".parquet":
            return list(pq.read_schema(path).names)
    except Exception as exc:  # pandas and pyarrow raise many kinds; all mean unreadable
        raise IngestError(path, f"cannot read the file ({type(exc).__name__}: {exc})") from exc
    raise IngestError(path, f"unsupported file type {suffix!r}; use .csv or .parquet")


def check_columns(path: Path, columns: list[str]) -> dict[str, str]:
    """Map the file's columns to fields, refusing any column not on the allow-list."""
    extra = [c for c in columns if c.strip().lower() not in ALLOWED]
    if extra:
        raise IngestError(
            path,
            f"columns not allowed for people: {', '.join(extra)}. Only these are collected: "
            f"{', '.join(sorted(set(ALLOWED)))}. Remove the others from the file; "
            "they are not read.",
        )
    mapping = {c: ALLOWED[c.strip().lower()] for c in columns}
    fields = set(mapping.values())
    for need in ("age_band", "resident_type"):
        if need not in fields:
            raise IngestError(path, "missing required field", field=need)
    if "home_address" not in fields and not {"home_lon", "home_lat"} <= fields:
        raise IngestError(
            path, "people need a home location: home_address, or home_lon and home_lat"
        )
    return mapping


def ingest_people(
    path: Path,
    settings: Settings,
    *,
    mode: str = "append",
    skip_unmatched: bool = False,
    progress: Progress = quiet,
) -> Report:
    t0 = time.perf_counter()
    path = Path(path)
    report = Report(str(path), "people")
    progress(f"checking the columns of {path.name}")
    mapping = check_columns(path, header(path))
    progress(f"reading {path.name}")
    if path.suffix.lower() == ".csv":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    else:
        df = pd.read_parquet(path).astype(str)
    df = df.rename(columns=mapping)
    report.read = len(df)
    if not len(df):
        raise IngestError(path, "file has no rows")
    rows = np.arange(1, len(df) + 1)
    for col, allowed in (("age_band", AGE_BANDS), ("resident_type", RESIDENT_TYPES)):
        bad = ~df[col].str.strip().isin(allowed)
        if bad.any():
            raise IngestError(
                path, f"must be one of {', '.join(allowed)}", rows=rows[bad].tolist(), field=col
            )
    with psycopg.connect(database_url(settings)) as conn, conn.transaction():
        progress(f"locating {len(df):,} homes")
        home_b, home_c, home_a, why = _locate(conn, df, "home", path, settings.finest_resolution)
        for reason in sorted(set(why) - {""}):
            report.reject(reason, rows[why == reason].tolist())
        if report.n_rejected and not skip_unmatched:
            listed = "; ".join(
                f"{reason}: row{'s' if len(r) > 1 else ''} {', '.join(map(str, r[:10]))}"
                for reason, r in sorted(report.rejected.items())
            )
            raise IngestError(
                path, f"home not found ({listed}); --skip-unmatched leaves such rows out"
            )
        keep = why == ""
        work_b = work_c = None
        if "work_address" in df or "work_lon" in df:
            work_b, work_c, _, wwhy = _locate(
                conn, df, "work", path, settings.finest_resolution, optional=True
            )
            report.details["work_unmatched"] = int((wwhy != "").sum())
        affected: list[int] = []
        if mode == "replace":
            affected += [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT home_cell FROM twin.person WHERE home_cell IS NOT NULL"
                )
            ]
            affected += [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT work_cell FROM twin.person WHERE work_cell IS NOT NULL"
                )
            ]
            conn.execute("DELETE FROM twin.person")
        n = int(keep.sum())
        floor = pd.to_numeric(df.get("home_floor"), errors="coerce") if "home_floor" in df else None
        alone = (
            df["lives_alone"].str.strip().str.lower().isin(["1", "true", "yes", "y"])
            if "lives_alone" in df
            else None
        )
        out = pd.DataFrame(
            {
                "id": reserve_ids(conn, "person", n),
                "home_building_id": pd.array(home_b[keep], dtype="Int64"),
                "home_address_id": pd.array(home_a[keep], dtype="Int64"),
                "home_floor": pd.array(floor[keep].round(), dtype="Int64")
                if floor is not None
                else pd.NA,
                "workplace_building_id": pd.array(work_b[keep], dtype="Int64")
                if work_b is not None
                else pd.NA,
                "age_band": df.age_band.str.strip()[keep].to_numpy(),
                "resident_type": df.resident_type.str.strip()[keep].to_numpy(),
                "lives_alone": alone[keep].to_numpy() if alone is not None else False,
                "home_cell": pd.array(home_c[keep], dtype="Int64"),
                "work_cell": pd.array(work_c[keep], dtype="Int64") if work_c is not None else pd.NA,
            }
        )
        districts.ensure(conn)  # a partition for each district before its residents go in
        out["district_id"] = districts.assign(conn, out.home_building_id, out.home_cell)
        copy_rows(conn, "twin.person", list(out.columns), out)
        affected += (
            out.home_cell.dropna().astype(int).tolist()
            + out.work_cell.dropna().astype(int).tolist()
        )
        conn.execute(
            "INSERT INTO twin.audit_log (action, resource, detail) VALUES ('ingest', 'person', %s)",
            (json.dumps({"file": path.name, "rows": n, "mode": mode}),),
        )
        report.details["cells_refreshed"] = refresh_cell_stats(
            conn, settings.h3_resolutions, cells=affected, k=settings.suppression_k
        )
    report.loaded = n
    report.seconds = time.perf_counter() - t0
    return report


def _locate(
    conn: psycopg.Connection,
    df: pd.DataFrame,
    which: str,
    path: Path,
    res: int,
    *,
    optional: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Building, cell and address of each row's home (or work) place, and why not ('' if found)."""
    n = len(df)
    # Object arrays of int or None: H3 ids exceed 2**53 and must never pass through floats.
    b = np.full(n, None, dtype=object)
    c = np.full(n, None, dtype=object)
    a = np.full(n, None, dtype=object)
    why = np.full(n, "", dtype=object)
    addr_col, lon_col, lat_col = f"{which}_address", f"{which}_lon", f"{which}_lat"
    has_addr = (
        df[addr_col].str.strip() != "" if addr_col in df else pd.Series(False, index=df.index)
    )
    if addr_col in df:
        keys = df[addr_col].map(normalize)
        found = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT normalized, id, building_id, cell FROM twin.address"
                " WHERE normalized = ANY(%s)",
                (keys[has_addr].unique().tolist(),),
            )
        }
        for i in np.flatnonzero(has_addr.to_numpy()):
            hit = found.get(keys.iloc[i])
            if hit is None:
                why[i] = "no such address in the address base"
            else:
                a[i], b[i], c[i] = hit[0], hit[1], hit[2]
    use_xy = ~has_addr.to_numpy()
    if lon_col in df and lat_col in df and use_xy.any():
        lon = pd.to_numeric(df[lon_col], errors="coerce").to_numpy()
        lat = pd.to_numeric(df[lat_col], errors="coerce").to_numpy()
        ok = (
            use_xy
            & np.isfinite(lon)
            & np.isfinite(lat)
            & (np.abs(lon) <= 180)
            & (np.abs(lat) <= 90)
        )
        bad = (
            use_xy
            & ~ok
            & ((df[lon_col].str.strip() != "") | (df[lat_col].str.strip() != "")).to_numpy()
        )
        if bad.any():
            raise IngestError(
                path,
                "not a valid lon/lat in degrees",
                rows=(np.flatnonzero(bad) + 1).tolist(),
                field=lon_col,
            )
        idx = np.flatnonzero(ok)
        if len(idx):
            for i, cell in zip(
                idx, grid.points_to_cells(lon[idx], lat[idx], res).tolist(), strict=True
            ):
                c[i] = cell
            wkb = shapely.to_wkb(shapely.points(lon[idx], lat[idx]))
            near = conn.execute(
                "SELECT p.i, nb.id, nb.address_id FROM unnest(%s::int[], %s::bytea[]) AS p(i, g) "
                "LEFT JOIN LATERAL (SELECT id, address_id FROM twin.building "
                "  WHERE ST_DWithin(geom::geography, ST_GeomFromWKB(p.g, 4326)::geography, %s) "
                "  ORDER BY geom <-> ST_GeomFromWKB(p.g, 4326) LIMIT 1) nb ON true",
                (idx.tolist(), list(wkb), NEAREST_BUILDING_M),
            ).fetchall()
            for i, bid, aid in near:
                if bid is not None:
                    b[i], a[i] = bid, aid
        missing = use_xy & ~ok & ~bad
        why[missing] = "" if optional else "no home location (empty address and lon/lat)"
    elif not optional:
        why[use_xy] = "empty address"
    return b, c, a, why
