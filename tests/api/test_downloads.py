"""Downloads of whole collections (``/collections/{id}/items?f=...``), read back by real
readers (GDAL through pyogrio, pyarrow and geopandas, pandas), checked against direct PostGIS
queries on the test's own connection; scoped to a district user; audited."""

from __future__ import annotations

import io
import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient

from twin.settings import Settings

from .scope_world import District, ids_in, make_world, sql

#: Geometry checksum: the sum of the areas in degrees² (lines and points: of the lengths/x).
CHECK_SQL = {
    "buildings": "SELECT count(*), sum(ST_Area(geom)) FROM twin.building",
    "roads": "SELECT count(*), sum(ST_Length(geom)) FROM twin.road_link",
    "hazard_sites": "SELECT count(*), sum(ST_X(geom)) FROM twin.hazard_site",
}


def _measure(name: str, geoms: object) -> float:
    if name == "buildings":
        return float(shapely.area(geoms).sum())  # type: ignore[attr-defined]
    if name == "roads":
        return float(shapely.length(geoms).sum())  # type: ignore[attr-defined]
    return float(shapely.get_x(geoms).sum())  # type: ignore[attr-defined]


def _read(fmt: str, body: bytes, tmp_path: Path) -> gpd.GeoDataFrame:
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(body)
    if fmt == "parquet":
        return gpd.read_parquet(path)
    if fmt == "csv":
        df = pd.read_csv(io.BytesIO(body))
        return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries.from_wkt(df["geometry"]), crs=4326)
    return pyogrio.read_dataframe(path, fid_as_index=True)


@pytest.mark.parametrize("fmt", ["parquet", "fgb", "gpkg", "csv"])
@pytest.mark.parametrize("name", ["buildings", "roads"])
def test_downloads_match_postgis(
    tiny_settings: Settings, tiny_client: TestClient, tmp_path: Path, fmt: str, name: str
) -> None:
    r = tiny_client.get(f"/collections/{name}/items?f={fmt}")
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].endswith(f'{name}.{fmt}"')
    df = _read(fmt, r.content, tmp_path)
    ((n, check),) = sql(tiny_settings, CHECK_SQL[name])
    assert len(df) == n > 0
    # WKT carries the full precision (shortest round trip): the sums agree to rounding.
    assert _measure(name, df.geometry.values) == pytest.approx(float(check), rel=1e-6)


def test_geoparquet_covering_row_groups_and_bbox(
    tiny_settings: Settings, tiny_client: TestClient, tmp_path: Path
) -> None:
    r = tiny_client.get("/collections/buildings/items?f=parquet")
    path = tmp_path / "b.parquet"
    path.write_bytes(r.content)
    meta = pq.ParquetFile(path)
    geo = json.loads(meta.schema_arrow.metadata[b"geo"])
    assert geo["version"] == "1.1.0"
    cov = geo["columns"]["geometry"]["covering"]["bbox"]
    assert cov == {c: ["bbox", c] for c in ("xmin", "ymin", "xmax", "ymax")}
    table = pq.read_table(path)
    bounds = shapely.bounds(shapely.from_wkb(table.column("geometry").to_numpy()))
    box = table.column("bbox").combine_chunks()
    for i, c in enumerate(("xmin", "ymin", "xmax", "ymax")):
        got = box.field(c).to_numpy()
        assert abs(got - bounds[:, i]).max() < 1e-9, c
    # The sum over row groups of their rows is the table's; bbox filter gives the PostGIS rows.
    assert sum(meta.metadata.row_group(i).num_rows for i in range(meta.num_row_groups)) == len(
        table
    )
    ((minx, miny, maxx, maxy),) = sql(
        tiny_settings,
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMin(e) + (ST_XMax(e) - ST_XMin(e)) / 3,"
        " ST_YMin(e) + (ST_YMax(e) - ST_YMin(e)) / 3"
        " FROM (SELECT ST_Extent(geom) e FROM twin.building) x",
    )
    q = f"{minx},{miny},{maxx},{maxy}"
    ((want,),) = sql(
        tiny_settings,
        "SELECT count(*) FROM twin.building"
        " WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
        (minx, miny, maxx, maxy),
    )
    part = tiny_client.get(f"/collections/buildings/items?f=parquet&bbox={q}")
    (tmp_path / "p.parquet").write_bytes(part.content)
    assert len(gpd.read_parquet(tmp_path / "p.parquet")) == want > 0


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_cql2_filter_narrows_the_download(
    tiny_client: TestClient, tiny_settings: Settings, tmp_path: Path, fmt: str
) -> None:
    ((want, measure),) = sql(
        tiny_settings,
        "SELECT count(*), sum(ST_Area(geom)) FROM twin.building WHERE height_m > 20",
    )
    r = tiny_client.get(
        "/collections/buildings/items", params={"f": fmt, "filter": "height_m > 20"}
    )
    assert r.status_code == 200, r.text
    got = _read(fmt, r.content, tmp_path)
    assert 0 < len(got) == want
    assert _measure("buildings", got.geometry.values) == pytest.approx(float(measure), rel=1e-9)
    bad = tiny_client.get("/collections/buildings/items", params={"f": fmt, "filter": "nope > 1"})
    assert bad.status_code == 400 and "nope" in bad.text


def test_bad_format_and_bbox_are_400_naming_the_parameter(tiny_client: TestClient) -> None:
    r = tiny_client.get("/collections/buildings/items?f=shp")
    assert r.status_code == 400 and "f" in r.text
    r = tiny_client.get("/collections/buildings/items?f=csv&bbox=1,2,3")
    assert r.status_code == 400 and "bbox" in r.text


@pytest.fixture(scope="module")
def world(tiny_settings: Settings) -> dict[str, District]:
    return make_world(tiny_settings, "dl", role="analyst")


def test_a_district_download_holds_only_its_rows_and_is_audited(
    tiny_settings: Settings, tiny_client: TestClient, world: dict[str, District], tmp_path: Path
) -> None:
    a = world["A"]
    mine = ids_in(tiny_settings, "hazard_site", a)
    ((everything,),) = sql(tiny_settings, "SELECT count(*) FROM twin.hazard_site")
    assert 0 < len(mine) < everything
    for fmt in ("gpkg", "fgb", "parquet", "csv"):
        r = tiny_client.get(f"/collections/hazard_sites/items?f={fmt}", headers=a.headers)
        assert r.status_code == 200, r.text
        df = _read(fmt, r.content, tmp_path)
        ids = set(df["fid"]) if "fid" in df else set(df.index)
        assert {int(i) for i in ids} == mine, fmt
    rows = sql(
        tiny_settings,
        "SELECT detail, area_id FROM twin.audit_log WHERE action = 'export.download'"
        " AND user_id = (SELECT id FROM twin.app_user WHERE name = %s)",
        (a.user,),
    )
    assert sorted(d["format"] for d, _ in rows) == ["csv", "fgb", "gpkg", "parquet"]
    for detail, area in rows:
        assert detail["collection"] == "hazard_sites" and detail["rows"] == len(mine)
        assert detail["actor"] == a.user and area == a.id


def test_the_public_download_is_the_public_view(
    tiny_settings: Settings, tiny_client: TestClient, tmp_path: Path
) -> None:
    """Hazard sites are 'important': the public gets what the GeoJSON route gives it (403)."""
    geojson = tiny_client.get("/collections/hazard_sites/items")
    r = tiny_client.get("/collections/hazard_sites/items?f=csv")
    assert r.status_code == geojson.status_code
    if r.status_code == 200:
        assert len(pd.read_csv(io.BytesIO(r.content))) == geojson.json()["numberMatched"]
    pub = tiny_client.get("/collections/buildings/items?f=csv")
    ((n,),) = sql(tiny_settings, "SELECT count(*) FROM twin.building")
    assert len(pd.read_csv(io.BytesIO(pub.content))) == n
