"""Two districts of a twin, an operator scoped to each, and what lies in each.

What lies in a district comes from direct SQL on the admin hierarchy (``twin.area_subtree``)
and on ``cell_stats.area_id`` (the grid patch holding a cell's centre), run on the test's own
superuser connection, not through the API under test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import psycopg

from twin.access.tokens import add_user
from twin.settings import Settings

#: Tables whose rows belong to an admin area (area_id) or to a cell (hazard sites).
IN_DISTRICT_SQL = {
    "alert": "SELECT id FROM twin.alert WHERE area_id IN (SELECT twin.area_subtree(%(d)s))",
    "task": "SELECT id FROM twin.task WHERE area_id IN (SELECT twin.area_subtree(%(d)s))",
    "event": "SELECT id FROM twin.event WHERE area_id IN (SELECT twin.area_subtree(%(d)s))",
    "hazard_site": "SELECT h.id FROM twin.hazard_site h JOIN twin.cell_stats s"
    " ON s.cell = h.cell AND s.res = twin.h3_resolution(h.cell)"
    " WHERE s.area_id IN (SELECT twin.area_subtree(%(d)s))",
}


@dataclass
class District:
    key: str
    id: int
    code: str
    patch: int  # a grid patch of the district
    user: str
    token: str
    areas: set[int]
    cells: dict[int, set[str]]  # res -> hex ids of the cells whose centre patch is here

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def all_cells(self) -> set[str]:
        return set().union(*self.cells.values())


def sql(settings: Settings, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url) as c:
        return c.execute(query, params).fetchall()


def ids_in(settings: Settings, table: str, district: District) -> set[int]:
    return {r[0] for r in sql(settings, IN_DISTRICT_SQL[table], {"d": district.id})}


def make_world(settings: Settings, tag: str, role: str = "operator") -> dict[str, District]:
    """Districts A and B (the first two by code) with a user of ``role`` scoped to each."""
    out: dict[str, District] = {}
    with psycopg.connect(settings.database_url) as c:
        rows = c.execute(
            "SELECT id, code FROM twin.admin_area WHERE level = 'district' ORDER BY code LIMIT 2"
        ).fetchall()
        assert len(rows) == 2, "the twin needs two districts"
        for key, (did, code) in zip("AB", rows, strict=True):
            areas = {r[0] for r in c.execute("SELECT twin.area_subtree(%s)", (did,))}
            patch = c.execute(
                "SELECT min(id) FROM twin.admin_area WHERE level = 'grid' AND id = ANY(%s)",
                (list(areas),),
            ).fetchone()[0]  # type: ignore[index]
            cells: dict[int, set[str]] = {}
            for res, hexes in c.execute(
                "SELECT res, array_agg(twin.h3_to_hex(cell)) FROM twin.cell_stats"
                " WHERE area_id = ANY(%s) GROUP BY res",
                (list(areas),),
            ):
                cells[res] = set(hexes)
            name = f"{tag}-{key}"
            _, token = add_user(c, name, role, f"district:{code}")
            out[key] = District(key, did, code, patch, name, token, areas, cells)
        c.commit()
    return out


def city_bounds(settings: Settings) -> tuple[float, float, float, float]:
    row = sql(
        settings,
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM"
        " (SELECT ST_Extent(geom) AS e FROM twin.admin_area WHERE level = 'city') x",
    )[0]
    return float(row[0]), float(row[1]), float(row[2]), float(row[3])


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """Slippy-map tile numbers (the standard formula, independent of the server)."""
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def tiles_over_city(settings: Settings, z: int) -> list[tuple[int, int]]:
    """Every tile of zoom ``z`` meeting the city's bounding box."""
    minx, miny, maxx, maxy = city_bounds(settings)
    x0, y0 = tile_of(minx, maxy, z)
    x1, y1 = tile_of(maxx, miny, z)
    return [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
