"""The CQL2 compiler (twin/cql2.py) on the demo city: each filter of the table selects the same
rows as a hand-written PostGIS query, and bad filters are refused naming what is wrong."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from twin import cql2
from twin.city.demo import build_demo
from twin.errors import InvalidParameterError
from twin.settings import Settings
from twin.tiles.catalog import LAYERS

#: Two districts' envelope corners of the tiny demo city (Linjiang, around 120.16 E 30.27 N).
WEST = "POLYGON((120.150 30.260, 120.158 30.260, 120.158 30.272, 120.150 30.272, 120.150 30.260))"
WEST_SQL = f"ST_GeomFromText('{WEST}', 4326)"
POINT_JSON = {"type": "Point", "coordinates": [120.16, 30.27]}

#: (collection, filter, language, equivalent condition over twin.<table> t written by hand).
TABLE: list[tuple[str, Any, str, str]] = [
    ("buildings", "use = 'office' OR use = 'commercial'", "cql2-text", "use IN ('office', 'commercial')"),
    ("buildings", "height_m > 30", "cql2-text", "height_m > 30"),
    ("buildings", "floors >= 10 AND use = 'residential'", "cql2-text", "floors >= 10 AND use = 'residential'"),
    ("buildings", "floors <> 6", "cql2-text", "floors <> 6"),
    ("buildings", "footprint_m2 < 400 AND NOT (use = 'residential')", "cql2-text", "footprint_m2 < 400 AND use <> 'residential'"),
    ("buildings", "height_m BETWEEN 20 AND 40", "cql2-text", "height_m >= 20 AND height_m <= 40"),
    ("buildings", "floors IN (1, 2, 3)", "cql2-text", "floors IN (1, 2, 3)"),
    ("buildings", "use NOT IN ('residential', 'commercial')", "cql2-text", "use NOT IN ('residential', 'commercial')"),
    ("buildings", f"S_INTERSECTS(geometry, {WEST})", "cql2-text", f"ST_Intersects(geom, {WEST_SQL})"),
    ("buildings", f"S_WITHIN(geometry, {WEST}) AND height_m > 20", "cql2-text", f"ST_Within(geom, {WEST_SQL}) AND height_m > 20"),
    ("buildings", "S_INTERSECTS(geometry, BBOX(120.155, 30.265, 120.165, 30.275))", "cql2-text",
     "geom && ST_MakeEnvelope(120.155, 30.265, 120.165, 30.275, 4326) AND ST_Intersects(geom, ST_MakeEnvelope(120.155, 30.265, 120.165, 30.275, 4326))"),
    ("buildings", "casei(use) = casei('RESIDENTIAL')", "cql2-text", "use = 'residential'"),
    ("buildings", {"op": "and", "args": [{"op": ">", "args": [{"property": "floors"}, 5]},
                                         {"op": "s_intersects", "args": [{"property": "geometry"}, {"type": "Polygon", "coordinates": [[[120.150, 30.260], [120.158, 30.260], [120.158, 30.272], [120.150, 30.272], [120.150, 30.260]]]}]}]},
     "cql2-json", f"floors > 5 AND ST_Intersects(geom, {WEST_SQL})"),
    ("parcels", "land_use LIKE 'R%'", "cql2-text", "land_use LIKE 'R%'"),
    ("parcels", "class = 'G' OR plot_ratio > 2.5", "cql2-text", "left(land_use, 1) = 'G' OR plot_ratio > 2.5"),
    ("parcels", "land_use LIKE '_1'", "cql2-text", "length(land_use) = 2 AND right(land_use, 1) = '1'"),
    ("parcels", "code IS NULL", "cql2-text", "code IS NULL"),
    ("parcels", "code IS NOT NULL AND land_use NOT LIKE 'R%'", "cql2-text", "code IS NOT NULL AND land_use NOT LIKE 'R%'"),
    ("roads", "bridge = true", "cql2-text", "bridge"),
    ("roads", "road_class IN ('primary', 'expressway') AND lanes >= 3", "cql2-text", "road_class IN ('primary', 'expressway') AND lanes >= 3"),
    ("roads", {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [120.155, 30.265, 120.165, 30.275]}]}, "cql2-json",
     "ST_Intersects(geom, ST_MakeEnvelope(120.155, 30.265, 120.165, 30.275, 4326))"),
    ("roads", {"op": "or", "args": [{"op": "=", "args": [{"property": "road_class"}, "secondary"]}, {"op": "not", "args": [{"op": "<", "args": [{"property": "free_speed_kmh"}, 50]}]}]},
     "cql2-json", "road_class = 'secondary' OR free_speed_kmh >= 50"),
    ("events", "T_AFTER(occurred_at, TIMESTAMP('2026-10-01T00:00:00Z'))", "cql2-text", "occurred_at > '2026-10-01T00:00:00Z'"),
    ("events", "T_BEFORE(occurred_at, DATE('2026-09-01'))", "cql2-text", "occurred_at < '2026-09-01T00:00:00Z'"),
    ("events", "T_INTERSECTS(occurred_at, INTERVAL('2026-09-01', '2026-09-30'))", "cql2-text",
     "occurred_at >= '2026-09-01T00:00:00Z' AND occurred_at < '2026-10-01T00:00:00Z'"),
    ("events", "T_INTERSECTS(occurred_at, INTERVAL('2026-10-15T00:00:00Z', '..')) AND status = 'open'", "cql2-text",
     "occurred_at >= '2026-10-15T00:00:00Z' AND status = 'open'"),
    ("events", "occurred_at >= TIMESTAMP('2026-10-01T00:00:00Z') AND severity > 1", "cql2-text", "occurred_at >= '2026-10-01T00:00:00Z' AND severity > 1"),
    ("events", {"op": "t_after", "args": [{"property": "occurred_at"}, {"date": "2026-10-20"}]}, "cql2-json", "occurred_at >= '2026-10-21T00:00:00Z'"),
    ("events", {"op": "s_within", "args": [{"property": "geometry"}, {"type": "Polygon", "coordinates": [[[120.150, 30.260], [120.158, 30.260], [120.158, 30.272], [120.150, 30.272], [120.150, 30.260]]]}]},
     "cql2-json", f"ST_Within(geom, {WEST_SQL})"),
    ("events", "type LIKE '%complaint' AND source = 'hotline'", "cql2-text", "type LIKE '%complaint' AND source = 'hotline'"),
    ("hazard_sites", "hazard_class >= 2 OR category = 'fuel_station'", "cql2-text", "hazard_class >= 2 OR category = 'fuel_station'"),
    ("admin_areas", "level = 'district' OR (level = 'street' AND name_en LIKE 'Jiangbei%')", "cql2-text",
     "level = 'district' OR (level = 'street' AND name_en LIKE 'Jiangbei%')"),
    ("admin_areas", "S_CONTAINS(geometry, POINT(120.16 30.27))", "cql2-text", "ST_Contains(geom, ST_SetSRID(ST_MakePoint(120.16, 30.27), 4326))"),
    ("admin_areas", {"op": "s_intersects", "args": [{"property": "geometry"}, POINT_JSON]}, "cql2-json",
     "ST_Intersects(geom, ST_SetSRID(ST_MakePoint(120.16, 30.27), 4326))"),
]  # fmt: skip


@pytest.fixture(scope="module")
def url(make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> str:
    u = make_database("twin_cql2")
    s = Settings(_env_file=None, database_url=u, data_dir=tmp_path_factory.mktemp("cql2"))
    build_demo(s, size="tiny", seed=9)
    return u


def _ids(c: psycopg.Connection, query: sql.Composable, params: dict[str, Any] | None) -> set[int]:
    return {r[0] for r in c.execute(query, params).fetchall()}


def test_filter_table_equals_postgis(url: str) -> None:
    informative = 0
    with psycopg.connect(url) as c:
        for coll, flt, lang, hand in TABLE:
            layer = LAYERS[coll]
            text = flt if isinstance(flt, str) else json.dumps(flt)
            f = cql2.compile_filter(layer, text, lang)
            table = sql.Identifier("twin", layer.table)
            got = _ids(c, sql.SQL("SELECT t.id FROM {} t WHERE ").format(table) + f.condition,
                       {**f.params, "k": 10})  # fmt: skip
            want = _ids(c, sql.SQL("SELECT id FROM {} WHERE " + hand).format(table), None)
            assert got == want, (coll, flt)
            total = c.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
            informative += 0 < len(want) < (total[0] if total else 0)
    # The table means something: nearly every filter keeps some rows and drops others.
    assert informative >= len(TABLE) - 3, informative
    assert len(TABLE) >= 25


BAD = [
    ("height_m >", "filter"),  # syntax
    ("nope = 1", "'nope' is not a queryable"),  # unknown property
    ("clearance_m > 1", "'clearance_m' is not a queryable"),  # a column the collection hides
    ("geom_3857 IS NULL", "'geom_3857' is not a queryable"),
    ("height_m = 'tall'", "wrong type: property 'height_m' is a number"),
    ("use > 3", "wrong type: property 'use' is a string"),
    ("use LIKE 3", "LIKE takes strings"),
    ("use LIKE 'res\\'", "must not end with the escape"),
    ("use LIKE use", "must be a string literal"),
    ("S_CONTAINS(geometry, GEOMETRYCOLLECTION(POINT(1 2)))", "GEOMETRYCOLLECTION"),
    ("S_INTERSECTS(use, POINT(1 2))", "takes geometries"),
    ("S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))", "invalid geometry"),
    ("T_AFTER(height_m, TIMESTAMP('2026-01-01T00:00:00Z'))", "T_AFTER takes a time property"),
    ("floors + 1 > 2", "arithmetic"),
    ("upper(use) = 'X'", "function 'upper'"),
    ("height_m BETWEEN 'a' AND 'b'", "BETWEEN takes numbers"),
    ("(" * 200 + "floors = 1" + ")" * 200, "nested deeper"),
    ("NOT " * 300 + "floors = 1", "nested deeper"),
    ("x" * 20000, "longer than"),
]


@pytest.mark.parametrize(("text", "says"), BAD)
def test_bad_filters_name_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(InvalidParameterError) as err:
        cql2.compile_filter(LAYERS["buildings"], text)
    assert err.value.parameter == "filter"
    assert says in str(err.value)


def test_hidden_event_column_and_languages() -> None:
    with pytest.raises(InvalidParameterError, match="'description' is not a queryable"):
        cql2.compile_filter(LAYERS["events"], "description LIKE '%'")
    with pytest.raises(InvalidParameterError) as err:
        cql2.compile_filter(LAYERS["events"], "type = 'fire'", "ecql")
    assert err.value.parameter == "filter-lang"
    # The drafts' name, which GDAL sends, is CQL2 text.
    assert cql2.compile_filter(LAYERS["events"], "type = 'fire'", "cql-text").params
    with pytest.raises(InvalidParameterError, match="not JSON"):
        cql2.compile_filter(LAYERS["events"], "{", "cql2-json")
    with pytest.raises(InvalidParameterError) as err:
        cql2.compile_filter(LAYERS["events"], "TRUE", crs="EPSG:3857")
    assert err.value.parameter == "filter-crs"
    # Two spellings of one filter share a key; another filter has its own.
    a = cql2.compile_filter(LAYERS["events"], "type = 'fire'")
    b = cql2.compile_filter(
        LAYERS["events"], '{"op": "=", "args": [{"property": "type"}, "fire"]}', "cql2-json"
    )
    assert a.key == b.key != cql2.compile_filter(LAYERS["events"], "type = 'garbage'").key


def test_queryables_schema_lists_published_properties_only() -> None:
    s = cql2.queryables_schema(LAYERS["events"], "http://x/collections/events/queryables")
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["type"] == "object" and s["additionalProperties"] is False
    assert set(s["properties"]) == {"geometry", *LAYERS["events"].props}
    assert s["properties"]["geometry"]["x-ogc-role"] == "primary-geometry"
    assert s["properties"]["occurred_at"] == {
        "title": "occurred_at", "type": "string", "format": "date-time",
        "x-ogc-role": "primary-instant",
    }  # fmt: skip
    assert s["properties"]["severity"]["type"] == "number"
    assert "description" not in s["properties"]


#: Pieces the fuzzer glues together and mutates.
PIECES = [
    "height_m",
    "use",
    "floors",
    "geometry",
    "nope",
    "'x'",
    "'it''s'",
    "3",
    "-2.5",
    "1e400",
    "TRUE",
    "NULL",
    "=",
    "<>",
    "<",
    ">=",
    "AND",
    "OR",
    "NOT",
    "LIKE",
    "IN",
    "BETWEEN",
    "IS NULL",
    "(",
    ")",
    ",",
    "S_INTERSECTS(",
    "T_AFTER(",
    "POINT(1 2)",
    "POLYGON((",
    "BBOX(1,2,3,4)",
    "TIMESTAMP('2026-13-01T00:00:00Z')",
    "DATE('2026-01-01')",
    "INTERVAL('..','..')",
    "casei(",
    "{",
    "}",
    "[",
    "]",
    '"',
    "%",
    "\\",
    "\x00",
    "é",
    "🙂",
]


def fuzz_filters(n: int, seed: int = 7) -> list[tuple[str, str, str]]:
    """(collection, filter, filter-lang): random glue of pieces, or a filter of the table with
    one to three characters deleted, inserted or replaced."""
    rng = random.Random(seed)
    seeds = [(coll, t if isinstance(t, str) else json.dumps(t)) for coll, t, _, _ in TABLE]
    out: list[tuple[str, str, str]] = []
    for _ in range(n):
        if rng.random() < 0.3:
            coll = "buildings"
            text = " ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 12)))
        else:
            coll, seed_text = rng.choice(seeds)
            text = list(seed_text)
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(text))
                op = rng.random()
                if op < 0.4:
                    del text[i]
                elif op < 0.7:
                    text.insert(i, rng.choice(PIECES))
                else:
                    text[i] = chr(rng.randint(0, 0x2FF))
            text = "".join(text)
        out.append((coll, text, "cql2-json" if text.startswith("{") else "cql2-text"))
    return out


def test_fuzz_compiles_or_refuses_and_postgis_accepts_what_compiles(url: str) -> None:
    """Random and mutated filters: each is refused (InvalidParameterError) or compiles to SQL
    that PostGIS runs without error."""
    ran = refused = 0
    with psycopg.connect(url, autocommit=True) as c:
        for coll, text, lang in fuzz_filters(400):
            layer = LAYERS[coll]
            try:
                f = cql2.compile_filter(layer, text, lang)
            except InvalidParameterError:
                refused += 1
                continue
            table = sql.Identifier("twin", layer.table)
            q = sql.SQL("SELECT count(*) FROM {} t WHERE ").format(table) + f.condition
            c.execute(q, {**f.params, "k": 10})
            ran += 1
    assert ran > 15 and refused > 100, (ran, refused)
