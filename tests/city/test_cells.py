"""Cell statistics against direct counts, and incremental refresh against a full one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import h3
import pandas as pd
import psycopg
import pytest

from twin import grid
from twin.city.cells import refresh_cell_stats
from twin.city.demo import build_demo
from twin.settings import Settings

AS_OF = datetime(2026, 10, 20, tzinfo=UTC)
RES = [7, 8, 9, 10]


@pytest.fixture(scope="module")
def city_url(make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> str:
    url = make_database("twin_cells")
    data = tmp_path_factory.mktemp("cells")
    build_demo(Settings(_env_file=None, database_url=url, data_dir=data), size="tiny", seed=5)
    with psycopg.connect(url) as c, c.transaction():
        refresh_cell_stats(c, RES, as_of=AS_OF)
    return url


def _snapshot(c: psycopg.Connection) -> list[tuple[object, ...]]:
    return c.execute(
        "SELECT res, cell, parent, area_id, population, population_by_age, elderly, jobs,"
        " buildings, floor_area_m2, height_mean_m, height_max_m, enterprises, hazard_sites,"
        " hazard_sites_by_category, events_open, events_open_by_type, events_30d,"
        " events_30d_by_type, road_length_m, land_use_mix, ST_AsText(geom)"
        " FROM twin.cell_stats ORDER BY res, cell"
    ).fetchall()


def test_population_per_cell_matches_a_direct_count(city_url: str) -> None:
    with psycopg.connect(city_url) as c:
        homes = [r[0] for r in c.execute("SELECT home_cell FROM twin.person")]
        ages = c.execute("SELECT home_cell, age_band FROM twin.person").fetchall()
        for res in RES:
            # Parents by the h3 library, independently of twin.grid and the SQL function.
            expected = Counter(h3.cell_to_parent(format(x, "x"), res) for x in homes)
            got = {
                grid.to_hex([cell])[0]: pop
                for cell, pop in c.execute(
                    "SELECT cell, population FROM twin.cell_stats WHERE res = %s AND population > 0",
                    (res,),
                )
            }
            assert got == dict(expected), res
        by_age = Counter((h3.cell_to_parent(format(x, "x"), 8), a) for x, a in ages)
        rows = c.execute(
            "SELECT cell, population_by_age FROM twin.cell_stats WHERE res = 8"
        ).fetchall()
        for cell, mix in rows:
            hexid = grid.to_hex([cell])[0]
            assert mix == {a: n for (cc, a), n in by_age.items() if cc == hexid}


def test_other_statistics_match_direct_sql(city_url: str) -> None:
    with psycopg.connect(city_url) as c:
        for res in (7, 9):
            rows = c.execute(
                "SELECT s.cell, s.buildings, s.floor_area_m2, s.height_max_m, s.road_length_m,"
                " s.events_30d, s.hazard_sites FROM twin.cell_stats s WHERE s.res = %s",
                (res,),
            ).fetchall()
            for cell, nb, fa, hmax, road, ev30, hz in rows:
                direct = c.execute(
                    "SELECT (SELECT count(*) FROM twin.building WHERE twin.h3_parent(cell, %(r)s) = %(c)s),"
                    " (SELECT coalesce(sum(footprint_m2 * floors), 0) FROM twin.building"
                    "   WHERE twin.h3_parent(cell, %(r)s) = %(c)s),"
                    " (SELECT max(height_m) FROM twin.building WHERE twin.h3_parent(cell, %(r)s) = %(c)s),"
                    " (SELECT coalesce(sum(length_m), 0) FROM twin.road_link"
                    "   WHERE twin.h3_parent(cell, %(r)s) = %(c)s),"
                    " (SELECT count(*) FROM twin.event WHERE twin.h3_parent(cell, %(r)s) = %(c)s"
                    "   AND occurred_at > %(t)s::timestamptz - interval '30 days'"
                    "   AND occurred_at <= %(t)s),"
                    " (SELECT count(*) FROM twin.hazard_site WHERE twin.h3_parent(cell, %(r)s) = %(c)s)",
                    {"r": res, "c": cell, "t": AS_OF},
                ).fetchone()
                assert direct is not None
                assert (nb, ev30, hz) == (direct[0], direct[4], direct[5])
                assert fa == pytest.approx(direct[1])
                assert hmax == direct[2]
                assert road == pytest.approx(direct[3], abs=0.01)


def test_land_use_shares_are_area_weighted(city_url: str) -> None:
    with psycopg.connect(city_url) as c:
        rows = c.execute(
            "SELECT s.cell, s.land_use_mix FROM twin.cell_stats s WHERE s.res = 8"
        ).fetchall()
        for cell, mix in rows:
            # Independent: intersect parcels with the stored cell polygon in PostGIS.
            direct = dict(
                c.execute(
                    "SELECT left(p.land_use, 1), sum(ST_Area(ST_Intersection(p.geom, s.geom)::geography))"
                    " / ST_Area(s.geom::geography) FROM twin.parcel p, twin.cell_stats s"
                    " WHERE s.res = 8 AND s.cell = %s AND ST_Intersects(p.geom, s.geom)"
                    " GROUP BY 1, s.geom",
                    (cell,),
                ).fetchall()
            )
            for cls, share in direct.items():
                if share > 0.01:
                    assert mix.get(cls, 0) == pytest.approx(share, abs=0.02), (cell, cls)


def test_incremental_refresh_equals_full(city_url: str, tmp_path: Path) -> None:
    with psycopg.connect(city_url) as c:
        # Change the model in one corner: move buildings, drop events, add a hazard site.
        moved = c.execute("SELECT id, cell FROM twin.building ORDER BY id LIMIT 40").fetchall()
        old_cells = [cell for _, cell in moved]
        target = int(grid.points_to_cells([120.165], [30.272], 10)[0])
        c.execute(
            "UPDATE twin.building SET cell = %s WHERE id = ANY(%s)", (target, [i for i, _ in moved])
        )
        gone = c.execute(
            "DELETE FROM twin.event WHERE id IN (SELECT id FROM twin.event ORDER BY id DESC LIMIT 25) RETURNING cell"
        ).fetchall()
        c.execute(
            "INSERT INTO twin.hazard_site (category, name, hazard_class, cell, geom)"
            " VALUES ('fuel_station', 'test', 2, %s, ST_SetSRID(ST_MakePoint(120.165, 30.272), 4326))",
            (target,),
        )
        affected = [*old_cells, target, *[g[0] for g in gone]]
        rows = refresh_cell_stats(c, RES, as_of=AS_OF, cells=affected)
        assert rows > 0
        incremental = _snapshot(c)
        refresh_cell_stats(c, RES, as_of=AS_OF)
        full = _snapshot(c)
        c.rollback()
    assert incremental == full


def _direct_area_counts(c: psycopg.Connection) -> dict[int, tuple[int, int]]:
    rows = c.execute(
        "SELECT b.area_id, count(DISTINCT b.id), count(p.id) FROM twin.building b"
        " LEFT JOIN twin.person p ON p.home_building_id = b.id"
        " WHERE b.area_id IS NOT NULL GROUP BY b.area_id"
    ).fetchall()
    return {a: (nb, nr) for a, nb, nr in rows}


def _stored_area_counts(c: psycopg.Connection) -> dict[int, tuple[int, int]]:
    rows = c.execute("SELECT area_id, buildings, residents FROM twin.area_counts").fetchall()
    return {a: (nb, nr) for a, nb, nr in rows}


def test_area_counts_follow_buildings_and_residents_that_move(city_url: str) -> None:
    with psycopg.connect(city_url) as c:
        assert _stored_area_counts(c) == _direct_area_counts(c)
        # Move 30 buildings (with their residents) into another patch, and re-home 50 people
        # of other buildings there too; then refresh only the cells that changed.
        src, dst = c.execute(
            "SELECT a.id FROM twin.admin_area a WHERE a.level = 'grid' AND EXISTS"
            " (SELECT 1 FROM twin.building b WHERE b.area_id = a.id) ORDER BY a.id LIMIT 2"
        ).fetchall()
        moved = c.execute(
            "SELECT id, cell FROM twin.building WHERE area_id = %s ORDER BY id LIMIT 30", src
        ).fetchall()
        (target,) = c.execute(
            "SELECT cell FROM twin.building WHERE area_id = %s ORDER BY id LIMIT 1", dst
        ).fetchone()
        c.execute(
            "UPDATE twin.building SET cell = %s, area_id = %s WHERE id = ANY(%s)",
            (target, dst[0], [i for i, _ in moved]),
        )
        chosen = (
            "SELECT id FROM twin.person WHERE home_building_id IS NOT NULL"
            " AND home_building_id <> ALL(%s) ORDER BY id DESC LIMIT 50"
        )
        before = c.execute(  # the residents' old places: an incremental refresh is given both
            f"SELECT DISTINCT b.cell FROM twin.person p JOIN twin.building b"
            f" ON b.id = p.home_building_id WHERE p.id IN ({chosen})",
            ([i for i, _ in moved],),
        ).fetchall()
        rehomed = c.execute(
            f"UPDATE twin.person SET home_building_id = %s, home_cell = %s WHERE id IN ({chosen})"
            " RETURNING id",
            (moved[0][0], target, [i for i, _ in moved]),
        ).fetchall()
        assert len(rehomed) == 50
        affected = [cell for _, cell in moved] + [target] + [r[0] for r in before]
        refresh_cell_stats(c, RES, as_of=AS_OF, cells=affected)
        stored, direct = _stored_area_counts(c), _direct_area_counts(c)
        c.rollback()
    assert stored == direct
    # The move was real: the source patch lost those buildings (all of them, or 30).
    assert direct.get(src[0], (0, 0))[0] < direct[dst[0]][0]


def test_each_cell_takes_the_patch_by_the_documented_rule(city_url: str) -> None:
    """area_id, from a direct PostGIS evaluation of the rule with the centres from h3 itself:
    the one grid patch holding the cell centre; where several or none do, the one overlapping
    the cell most (then the lower id)."""
    with psycopg.connect(city_url) as c:
        cells = [int(r[0]) for r in c.execute("SELECT cell FROM twin.cell_stats")]
        centres = [h3.cell_to_latlng(h3.int_to_str(x)) for x in cells]
        rows = c.execute(
            """
            WITH g AS (
                SELECT s.res, s.cell, s.area_id, s.geom,
                       ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326) AS centre
                FROM unnest(%s::bigint[], %s::float8[], %s::float8[]) AS t(cell, lon, lat)
                JOIN twin.cell_stats s ON s.cell = t.cell
            ), holders AS (
                SELECT g.cell, count(a.id) AS n FROM g
                LEFT JOIN twin.admin_area a
                       ON a.level = 'grid' AND ST_Intersects(a.geom, g.centre)
                GROUP BY g.cell
            )
            SELECT g.res, g.cell, g.area_id, (
                SELECT a.id FROM twin.admin_area a
                WHERE a.level = 'grid' AND ST_Intersects(a.geom, g.geom)
                ORDER BY (h.n = 1 AND ST_Intersects(a.geom, g.centre)) DESC,
                         ST_Intersects(a.geom, g.centre) DESC,
                         ST_Area(ST_Intersection(a.geom, g.geom)) DESC, a.id
                LIMIT 1)
            FROM g JOIN holders h ON h.cell = g.cell
            """,
            (cells, [lon for _, lon in centres], [lat for lat, _ in centres]),
        ).fetchall()
    assert len(rows) == len(cells) > 0
    wrong = [(r, c, got, want) for r, c, got, want in rows if got != want]
    assert not wrong, wrong[:5]


def test_centre_patches_takes_only_a_sole_holder() -> None:
    import numpy as np
    import shapely

    from twin.city.cells import centre_patches

    left, right = shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)
    points = np.array(shapely.points([0.5, 1.0, 1.5, 3.0], [0.5, 0.5, 0.5, 0.5]), dtype=object)
    got = centre_patches(points, np.array([10, 20]), np.array([left, right], dtype=object))
    # inside the left; on the shared edge (both hold it: settled by overlap); inside the
    # right; outside both.
    assert [None if v is pd.NA else int(v) for v in got] == [10, None, 20, None]
