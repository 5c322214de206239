"""The city's place: the first ingest records its UTM zone, later steps use it, and road
lengths come out true against geodesic lengths (pyproj.Geod) on the real Helsinki extract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from pyproj import Geod
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info
from shapely import wkb

from tests.ingest.grids import HELSINKI
from twin.city.meta import read_city, settings_for
from twin.db.migrate import upgrade
from twin.ingest.layers import Fields
from twin.ingest.osm import ingest_osm
from twin.ingest.vector import ingest_vector
from twin.settings import Settings


def _fresh(make_database: Callable[..., str], tmp_path: Path, **kw: object) -> Settings:
    url = make_database("twin_meta")
    upgrade(url)
    return Settings(_env_file=None, database_url=url, data_dir=tmp_path / "d", **kw)  # type: ignore[arg-type]


def test_osm_records_the_utm_zone_and_lengths_are_true(
    make_database: Callable[..., str], tmp_path: Path
) -> None:
    settings = _fresh(make_database, tmp_path)
    assert settings.metric_crs == "EPSG:32651"  # the default (demo) city's zone: wrong here
    ingest_osm(HELSINKI, settings)
    url = settings.database_url or ""
    with psycopg.connect(url) as conn:
        city = read_city(conn)
        ((x0, y0, x1, y1),) = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
            " FROM (SELECT ST_Extent(geom) e FROM twin.building) b"
        ).fetchall()
        roads = conn.execute(
            "SELECT ST_AsBinary(geom), length_m FROM twin.road_link ORDER BY length_m DESC LIMIT 50"
        ).fetchall()
    utm = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(x0, y0, x1, y1))
    assert city is not None and city.crs == f"EPSG:{utm[0].code}" == "EPSG:32635"
    assert city.source == "osm:Helsinki.osm.pbf"
    geod = Geod(ellps="WGS84")
    for geom, length in roads:  # UTM scale error stays below 0.1 % inside a zone
        true = geod.geometry_length(wkb.loads(bytes(geom)))
        assert length == pytest.approx(true, rel=1e-3)
    # Commands and the server read the place back; an explicit setting wins.
    assert settings_for(settings, url).metric_crs == "EPSG:32635"
    pinned = Settings(_env_file=None, database_url=url, city_crs="EPSG:3067")
    assert settings_for(pinned, url).metric_crs == "EPSG:3067"


def test_an_append_keeps_the_recorded_city(
    make_database: Callable[..., str], tmp_path: Path
) -> None:
    settings = _fresh(make_database, tmp_path, city_crs="EPSG:3067")  # Finland's TM35FIN
    ingest_osm(HELSINKI, settings)
    plain = Settings(_env_file=None, database_url=settings.database_url, data_dir=tmp_path / "d")
    road = tmp_path / "road.geojson"
    road.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
        '{"highway": "residential"}, "geometry": {"type": "LineString", "coordinates": '
        "[[24.93, 60.17], [24.94, 60.171]]}}]}"
    )
    ingest_vector("roads", road, plain, mode="append", fields=Fields(road_class="highway"))
    with psycopg.connect(settings.database_url or "") as conn:
        city = read_city(conn)
    assert city is not None and city.crs == "EPSG:3067"
