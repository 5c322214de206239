"""``twin export`` through the real command, read back with GDAL (pyogrio) and pyarrow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import psycopg
import pyogrio

from twin.settings import Settings


def _twin(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(TWIN_DATABASE_URL=settings.database_url or "", TWIN_DATA_DIR=str(settings.data_dir))
    return subprocess.run(
        [sys.executable, "-m", "twin", "export", *args], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def test_export_writes_what_postgis_holds(tiny_settings: Settings, tmp_path: Path) -> None:
    with psycopg.connect(tiny_settings.database_url or "") as c:
        ((n, area),) = c.execute("SELECT count(*), sum(ST_Area(geom)) FROM twin.building")
        ((audits,),) = c.execute(
            "SELECT count(*) FROM twin.audit_log WHERE action = 'export.download'"
        )
    for fmt in ("fgb", "parquet"):
        out = tmp_path / f"b.{fmt}"
        r = _twin(tiny_settings, "buildings", "--format", fmt, "--out", str(out), "--json")
        assert r.returncode == 0, r.stderr
        df = gpd.read_parquet(out) if fmt == "parquet" else pyogrio.read_dataframe(out)
        assert len(df) == n
        assert abs(df.geometry.area.sum() - float(area)) < 1e-9 * float(area) + 1e-15
    info = pyogrio.read_info(tmp_path / "b.fgb")
    assert info["features"] == n
    with psycopg.connect(tiny_settings.database_url or "") as c:
        ((after,),) = c.execute(
            "SELECT count(*) FROM twin.audit_log WHERE action = 'export.download'"
        )
    assert after == audits + 2


def test_export_errors_name_the_option(tiny_settings: Settings, tmp_path: Path) -> None:
    r = _twin(tiny_settings, "people", "--format", "csv", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "COLLECTION" in r.stderr
    r = _twin(tiny_settings, "buildings", "--format", "shp", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "--format" in r.stderr
    r = _twin(tiny_settings, "buildings", "--format", "csv", "--out", str(tmp_path / "x"),
              "--bbox", "1,2")  # fmt: skip
    assert r.returncode == 2 and "--bbox" in r.stderr
    r = _twin(tiny_settings, "events", "--format", "csv", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "not cleared" in r.stderr


def test_ogrinfo_reads_the_gpkg_and_the_indexed_fgb(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    """GDAL's own command-line reader (gdal-bin, scripts/setup.sh) on both files."""
    with psycopg.connect(tiny_settings.database_url or "") as c:
        ((n,),) = c.execute("SELECT count(*) FROM twin.road_link")
    for fmt in ("gpkg", "fgb"):
        out = tmp_path / f"roads.{fmt}"
        assert _twin(tiny_settings, "roads", "--format", fmt, "--out", str(out)).returncode == 0
        r = subprocess.run(["ogrinfo", "-so", "-al", str(out)], capture_output=True, text=True,
                           check=True)  # fmt: skip
        assert f"Feature Count: {n}" in r.stdout, r.stdout
    # FlatGeobuf: a spatial filter answers through the index with the PostGIS rows.
    with psycopg.connect(tiny_settings.database_url or "") as c:
        ((x0, y0, x1, y1),) = c.execute(
            "SELECT ST_XMin(e), ST_YMin(e), (ST_XMin(e) + ST_XMax(e)) / 2,"
            " (ST_YMin(e) + ST_YMax(e)) / 2 FROM (SELECT ST_Extent(geom) e FROM twin.road_link) x"
        )
        ((want,),) = c.execute(
            "SELECT count(*) FROM twin.road_link"
            " WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
            (x0, y0, x1, y1),
        )
    got = pyogrio.read_info(tmp_path / "roads.fgb")
    part = pyogrio.read_dataframe(tmp_path / "roads.fgb", bbox=(x0, y0, x1, y1))
    assert got["features"] == n and len(part) == want > 0


def test_export_takes_a_cql2_filter(tiny_settings: Settings, tmp_path: Path) -> None:
    """--filter selects the rows as filter= on the items route does; the count comes from
    the equivalent SQL."""
    with psycopg.connect(tiny_settings.database_url or "") as c:
        ((want,),) = c.execute(
            "SELECT count(*) FROM twin.building WHERE use = 'residential' AND height_m > 20"
        )
    out = tmp_path / "tall.parquet"
    r = _twin(tiny_settings, "buildings", "--format", "parquet", "--out", str(out),
              "--filter", "use = 'residential' AND height_m > 20")  # fmt: skip
    assert r.returncode == 0, r.stderr
    df = gpd.read_parquet(out)
    assert len(df) == want and want > 0
    assert set(df["use"]) == {"residential"} and (df["height_m"] > 20).all()
    json_filter = '{"op": ">", "args": [{"property": "height_m"}, 20]}'
    r = _twin(tiny_settings, "buildings", "--format", "csv", "--out", str(tmp_path / "j.csv"),
              "--filter", json_filter, "--filter-lang", "cql2-json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = _twin(tiny_settings, "buildings", "--format", "csv", "--out", str(tmp_path / "x.csv"),
              "--filter", "no_such_property = 1")  # fmt: skip
    assert r.returncode == 2 and "--filter" in r.stderr and "no_such_property" in r.stderr
