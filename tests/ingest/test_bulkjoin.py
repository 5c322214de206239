"""twin.ingest.bulkjoin against the single-process answer: geopandas.sjoin and twin.grid.

The partitioned join must give exactly the rows of ``gpd.sjoin(how="left",
predicate="intersects")`` (GEOS, not DuckDB) whatever the partitioning, and the cells of
``grid.points_to_cells``; writing goes through a staging table and leaves the target as it was
on error. Runs on a fresh database of its own (the shared demo is not touched).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from twin import grid
from twin.ingest.bulkjoin import JoinSpec, bulk_join, partitioned_join
from twin.ingest.report import IngestError

SEED = 20261206


def _files(tmp_path: Path, n: int = 30_000) -> tuple[Path, Path, pd.DataFrame, gpd.GeoDataFrame]:
    rng = np.random.default_rng(SEED)
    # A 60 km x 50 km region: several res-5 partitions, more at res 6.
    lon = rng.uniform(119.9, 120.5, n)
    lat = rng.uniform(30.0, 30.45, n)
    pts = pd.DataFrame(
        {
            "pid": np.arange(n, dtype=np.int64) * 7 + 3,
            "lon": lon,
            "lat": lat,
            "kind": rng.choice(["home", "work", 'it\'s "quoted", with commas'], n),
        }
    )
    pts_path = tmp_path / "points.parquet"
    pq.write_table(pa.Table.from_pandas(pts, preserve_index=False), pts_path)
    # Parcels: random boxes and triangles, some overlapping, some far larger than a partition
    # (they span partition boundaries), and a multipolygon; many points fall in none.
    x0 = rng.uniform(119.9, 120.5, 400)
    y0 = rng.uniform(30.0, 30.45, 400)
    w = rng.uniform(0.002, 0.03, 400)
    geoms = list(shapely.box(x0, y0, x0 + w, y0 + w * 0.8))
    geoms[:5] = [shapely.box(119.95 + i * 0.1, 30.05, 120.03 + i * 0.1, 30.4) for i in range(5)]
    geoms[5] = shapely.Polygon([(120.0, 30.0), (120.5, 30.2), (120.1, 30.45)])
    geoms[6] = shapely.MultiPolygon(
        [shapely.box(120.2, 30.2, 120.21, 30.21), shapely.box(120.3, 30.3, 120.32, 30.31)]
    )
    parcels = gpd.GeoDataFrame(
        {"parcel_id": np.arange(1000, 1400, dtype=np.int64)}, geometry=geoms, crs="EPSG:4326"
    )
    poly_path = tmp_path / "parcels.parquet"
    parcels.to_parquet(poly_path)
    return pts_path, poly_path, pts, parcels


def _expected(pts: pd.DataFrame, parcels: gpd.GeoDataFrame, res: int) -> pd.DataFrame:
    gpts = gpd.GeoDataFrame(pts, geometry=gpd.points_from_xy(pts.lon, pts.lat), crs="EPSG:4326")
    joined = gpd.sjoin(gpts, parcels, how="left", predicate="intersects")
    out = pd.DataFrame(
        {
            "pid": joined["pid"].to_numpy(),
            "kind": joined["kind"].to_numpy(),
            "cell": grid.points_to_cells(joined.lon.to_numpy(), joined.lat.to_numpy(), res),
            "parcel_id": joined["parcel_id"].astype("Int64").to_numpy(),
        }
    )
    return out.sort_values(["pid", "parcel_id"]).reset_index(drop=True)


def _frame(parts: list[pa.Table]) -> pd.DataFrame:
    df = pa.concat_tables(parts).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    df["pid"] = df["pid"].astype(np.int64)
    df["cell"] = df["cell"].astype(np.int64)
    return (
        df[["pid", "kind", "cell", "parcel_id"]]
        .sort_values(["pid", "parcel_id"])
        .reset_index(drop=True)
    )


@pytest.mark.parametrize("key_res", [4, 6])
def test_partitioned_join_equals_single_process_sjoin(tmp_path: Path, key_res: int) -> None:
    pts_path, poly_path, pts, parcels = _files(tmp_path)
    spec = JoinSpec(x="lon", y="lat", polygon_id="parcel_id", res=9, key_res=key_res)
    parts = list(
        partitioned_join(pts_path, poly_path, spec, threads=2, batch_rows=7_000, tmp_dir=tmp_path)
    )
    assert len(parts) > 1  # really partitioned
    got = _frame(parts)
    want = _expected(pts, parcels, 9)
    assert got["parcel_id"].notna().sum() > 1000 and got["parcel_id"].isna().sum() > 1000
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_bad_points_are_named_and_the_target_is_left_as_it_was(
    tmp_path: Path, make_database: Callable[..., str]
) -> None:
    url = make_database("twin_bulkjoin")
    pts_path, poly_path, pts, parcels = _files(tmp_path, n=5_000)
    spec = JoinSpec(x="lon", y="lat", polygon_id="parcel_id", res=9, key_res=5)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA bulk")
        conn.execute(
            "CREATE TABLE bulk.person_parcel (pid bigint, kind text, cell bigint, parcel_id bigint)"
        )
        conn.execute("INSERT INTO bulk.person_parcel VALUES (1, 'old', 0, NULL)")

    report = bulk_join(pts_path, poly_path, "bulk.person_parcel", url, spec, threads=2)
    want = _expected(pts, parcels, 9)
    assert report.loaded == len(want) and report.read == len(pts)
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT pid, kind, cell, parcel_id FROM bulk.person_parcel").fetchall()
    got = pd.DataFrame(rows, columns=["pid", "kind", "cell", "parcel_id"])
    got["parcel_id"] = got["parcel_id"].astype("Int64")
    got = got.sort_values(["pid", "parcel_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)

    # A bad coordinate in row 4,001 of the file: named, nothing written, no staging left.
    bad = pts.copy()
    bad.loc[4000, "lat"] = 91.0
    bad_path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pandas(bad, preserve_index=False), bad_path, row_group_size=1000)
    with pytest.raises(IngestError, match=r"field 'lat', row 4001"):
        bulk_join(bad_path, poly_path, "bulk.person_parcel", url, spec, threads=2)
    with pytest.raises(IngestError, match="field 'x'"):
        bulk_join(pts_path, poly_path, "bulk.person_parcel", url, JoinSpec(polygon_id="parcel_id"))
    with pytest.raises(IngestError, match="does not exist"):
        bulk_join(pts_path, poly_path, "bulk.nowhere", url, spec, threads=2)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM bulk.person_parcel").fetchone() == (len(want),)
        left = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'bulk' AND tablename LIKE %s",
            ("%staging%",),
        ).fetchone()
        assert left == (0,)


def test_cli_loads_and_names_a_missing_column(
    tmp_path: Path, make_database: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from twin.cli import app

    url = make_database("twin_bulkjoin_cli")
    pts_path, poly_path, pts, parcels = _files(tmp_path, n=3_000)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE pp (pid bigint, kind text, cell bigint, parcel_id bigint)")
    monkeypatch.setenv("TWIN_DATABASE_URL", url)
    args = ["ingest", "bulkjoin", str(pts_path), str(poly_path), "--into", "public.pp"]
    r = CliRunner().invoke(app, [*args, "--polygon-id", "parcel_id", "--threads", "2", "--json"])
    assert r.exit_code == 0, r.output
    assert '"loaded": ' + str(len(_expected(pts, parcels, 9))) in r.output
    r = CliRunner().invoke(app, [*args, "--x", "longitude", "--polygon-id", "parcel_id"])
    assert r.exit_code != 0 and "field 'longitude'" in r.output, r.output
