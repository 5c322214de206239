"""Vector ingest: formats, field mapping, incremental cells, and bad input that changes nothing."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pytest
import shapely

from tests.ingest.conftest import state
from twin.city.cells import refresh_cell_stats
from twin.ingest.layers import Fields
from twin.ingest.report import IngestError
from twin.ingest.vector import ingest_vector
from twin.settings import Settings

BOX = shapely.box(120.160, 30.270, 120.1602, 30.2702)


def _buildings(n: int = 5, dx: float = 0.0005) -> gpd.GeoDataFrame:
    geoms = [shapely.affinity.translate(BOX, xoff=i * dx) for i in range(n)]
    return gpd.GeoDataFrame(
        {"bid": [f"b{i}" for i in range(n)], "h": [10.0, None, None, 30.0, None],
         "lv": [None, 4, None, None, None], "kind": ["apartments", "retail", "school", "office", "weird"]},
        geometry=geoms, crs="EPSG:4326",
    )  # fmt: skip


@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "shp", "fgb", "parquet", "csv"])
def test_buildings_from_every_format(city: Settings, tmp_path: Path, fmt: str) -> None:
    gdf = _buildings()
    path = tmp_path / f"b.{fmt}"
    crs = None
    if fmt == "parquet":
        gdf.to_parquet(path)
    elif fmt == "csv":
        pd.DataFrame({**gdf.drop(columns="geometry"), "wkt": gdf.geometry.to_wkt()}).to_csv(
            path, index=False
        )
        crs = "EPSG:4326"
    else:
        gdf.to_crs("EPSG:32651").to_file(path)  # a projected file: reprojected on the way in
    f = Fields(id="bid", height="h", levels="lv", use="kind")
    report = ingest_vector("buildings", path, city, fields=f, crs=crs)
    assert report.loaded == 5
    assert report.details["height_from"] == {"height": 2, "levels": 1, "default": 2}
    with psycopg.connect(city.database_url) as c:
        rows = c.execute(
            "SELECT b.source_id, b.use, b.height_m, b.height_source, b.floors, a.text IS NOT NULL,"
            " ST_Area(b.geom::geography) FROM twin.building b JOIN twin.address a ON a.id = b.address_id"
            " WHERE b.source_id LIKE 'b%%' ORDER BY b.source_id"
        ).fetchall()
    assert [r[1] for r in rows] == ["residential", "commercial", "education", "office", "other"]
    assert [r[2] for r in rows] == [10.0, 12.0, 12.0, 30.0, 6.0]  # height, 4 x 3 m, defaults
    assert all(r[5] for r in rows)
    assert rows[0][6] == pytest.approx(
        shapely.area(BOX) * 111320**2 * np.cos(np.radians(30.27)), rel=0.01
    )


def test_incremental_cells_after_ingest_equal_a_full_refresh(
    city: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "b.gpkg"
    _buildings().to_file(path)
    ingest_vector("buildings", path, city, fields=Fields(id="bid", height="h", use="kind"))
    with psycopg.connect(city.database_url) as c:
        q = "SELECT res, cell, buildings, floor_area_m2, height_max_m FROM twin.cell_stats ORDER BY 1, 2"
        after_ingest = c.execute(q).fetchall()
        refresh_cell_stats(c, city.h3_resolutions)
        full = c.execute(q).fetchall()
        c.rollback()
    assert after_ingest == full


def test_replace_and_append(city: Settings, tmp_path: Path) -> None:
    path = tmp_path / "b.geojson"
    _buildings().to_file(path)
    ingest_vector("buildings", path, city, mode="replace", fields=Fields(id="bid"))
    with pytest.raises(IngestError, match="already loaded"):
        ingest_vector("buildings", path, city, mode="append", fields=Fields(id="bid"))
    with psycopg.connect(city.database_url) as c:
        assert c.execute("SELECT count(*) FROM twin.building").fetchone() == (5,)


def test_repairable_geometry_is_repaired_and_counted(city: Settings, tmp_path: Path) -> None:
    bowtie = shapely.Polygon(
        [(120.17, 30.27), (120.171, 30.271), (120.171, 30.27), (120.17, 30.271)]
    )
    gdf = gpd.GeoDataFrame({"bid": ["x"]}, geometry=[bowtie], crs="EPSG:4326")
    path = tmp_path / "bow.gpkg"
    gdf.to_file(path)
    report = ingest_vector("buildings", path, city, fields=Fields(id="bid"))
    assert report.repaired == 1 and report.loaded == 1


def _write(tmp_path: Path, name: str, gdf: gpd.GeoDataFrame) -> Path:
    p = tmp_path / name
    gdf.to_file(p)
    return p


def _raw(t: Path, name: str, data: bytes) -> Path:
    (t / name).write_bytes(data)
    return t / name


BAD_CASES = {
    "empty file": (lambda t: _raw(t, "e.geojson", b""), "buildings", {}, "file is empty"),
    "no features": (lambda t: _write(t, "n.gpkg", _buildings().iloc[:0]), "buildings", {}, "no features"),
    "missing field": (lambda t: _write(t, "p.gpkg", _buildings()), "parcels", {}, "missing required field"),
    "wrong type": (lambda t: _write(t, "w.gpkg", _buildings().assign(h=["ten", "1", "2", "3", "4"])), "buildings",
                   {"fields": Fields(height="h")}, "row 1: not a number: 'ten'"),
    "no crs": (lambda t: (pd.DataFrame({"wkt": ["POINT (1 2)"], "type": ["fire"], "occurred_at": ["2026-01-01"]})
                          .to_csv(t / "c.csv", index=False)) or t / "c.csv", "events", {}, "declares no CRS"),
    "out of range": (lambda t: _write(t, "o.gpkg", gpd.GeoDataFrame({"type": ["fire"], "occurred_at": ["2026-01-01"]},
                     geometry=[shapely.Point(500000, 3350000)], crs="EPSG:4326")), "events", {}, "outside the valid range"),
    "mixed types": (lambda t: _write(t, "m.geojson", gpd.GeoDataFrame({"bid": ["a", "b"]},
                    geometry=[BOX, shapely.Point(120.1, 30.2)], crs="EPSG:4326")), "buildings", {}, "row 2: mixed geometry types"),
    "duplicate ids": (lambda t: _write(t, "d.gpkg", _buildings().assign(bid=["a", "a", "b", "c", "d"])), "buildings",
                      {"fields": Fields(id="bid")}, "rows 1, 2: duplicate ids"),
    "bad land use": (lambda t: _write(t, "l.gpkg", _buildings().assign(land_use=["R", "Q", "B", "G", "M"])), "parcels",
                     {}, "row 2: not a GB 50137 land-use class"),
    "unrepairable": (lambda t: _write(t, "u.gpkg", gpd.GeoDataFrame({"bid": ["a", "b"]}, geometry=[
                     BOX, shapely.Polygon([(120.0, 30.0), (120.001, 30.0), (120.002, 30.0)])], crs="EPSG:4326")),
                     "buildings", {}, "row 2: invalid geometry that cannot be repaired"),
    "corrupt file": (lambda t: _raw(t, "x.gpkg", b"not a geopackage at all" * 100),
                     "buildings", {}, "cannot read the file"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_refused_clearly_and_changes_nothing(
    city: Settings, tmp_path: Path, case: str
) -> None:
    make, kind, kwargs, message = BAD_CASES[case]
    path = make(tmp_path)
    before = state(city.database_url or "")
    with pytest.raises(IngestError) as err:
        ingest_vector(kind, path, city, **kwargs)
    assert str(path) in str(err.value)
    assert message in str(err.value)
    assert state(city.database_url or "") == before
