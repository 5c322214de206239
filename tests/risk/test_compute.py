"""`twin risk compute` on a tiny demo city: controlled layers against hand-computed scores,
the shipped catalog against direct PostGIS queries, snapshots, versions, and failures that
leave the previous scores in place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h3
import psycopg
import pytest

from twin.city.demo import build_demo
from twin.risk.catalog import load_catalog
from twin.risk.compute import ComputeError, compute_risk
from twin.settings import Settings, project_root

K = 10
CONTROLLED = """
id = "controlled"
title = "Controlled"
title_zh = "受控"
family = "natural_hazards"
[source]
sql = \"\"\"
SELECT * FROM (VALUES ({a}::bigint, 0.25::float8, 50::int), ({b}, 0.5, 4), ({c}, NULL, 100),
                      ({d}, 0.0, 0)) v(cell, depth, people)
\"\"\"
[[inputs]]
name = "depth"
normalise = "linear"
min = 0
max = 0.5
weight = 3
[[inputs]]
name = "people"
normalise = "linear"
min = 0
max = 100
weight = 1
people = true
[levels]
yellow = 25
orange = 50
red = 75
"""


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    s = Settings(_env_file=None, database_url=make_database("twin_risk"),
                 data_dir=tmp_path_factory.mktemp("risk"), suppression_k=K)  # fmt: skip
    build_demo(s, size="tiny", seed=5)
    return s


@pytest.fixture(scope="module")
def cells(settings: Settings) -> list[int]:
    """Four res-9 cells of the city with statistics (so they have a grid patch) and no people
    field hidden (a hidden one would hide the cell's people-based scores too)."""
    with psycopg.connect(settings.database_url or "") as conn:
        rows = conn.execute(
            "SELECT cell FROM twin.cell_stats WHERE res = 9 AND area_id IS NOT NULL"
            " AND cardinality(hidden) = 0 ORDER BY cell LIMIT 4"
        ).fetchall()
    return [int(r[0]) for r in rows]


def _controlled_dir(tmp: Path, cells: list[int]) -> Path:
    a, b, c, d = cells
    (tmp / "controlled.toml").write_text(CONTROLLED.format(a=a, b=b, c=c, d=d))
    return tmp


def _scores(url: str, layer: str, res: int = 9) -> dict[int, tuple[float, str, bool]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT cell, score, level, small_count FROM twin.risk_score"
            " WHERE layer_id = %s AND res = %s", (layer, res),
        ).fetchall()  # fmt: skip
    return {int(c): (s, lvl, small) for c, s, lvl, small in rows}


def test_controlled_layer_matches_hand_computed_scores(
    settings: Settings, cells: list[int], tmp_path: Path
) -> None:
    url = settings.database_url or ""
    catalog = load_catalog(_controlled_dir(tmp_path, cells), resolutions=[7, 8, 9, 10])
    result = compute_risk(url, catalog, resolutions=[7, 8, 9, 10], k=K)
    a, b, c, _ = cells
    got = _scores(url, "controlled")
    # 100 * (3 * depth / 0.5 + people / 100) / 4: a 50 (orange), b 76 (red; 4 people < k),
    # c 25 (yellow), d 0 (no risk: not stored).
    assert got == {a: (50.0, "orange", False), b: (76.0, "red", True), c: (25.0, "yellow", False)}
    assert result.levels["controlled"] == {"blue": 0, "yellow": 1, "orange": 1, "red": 1}
    # The one map of a single public layer is that layer.
    assert {k: v[:2] for k, v in _scores(url, "onemap").items()} == {
        k: v[:2] for k, v in got.items()
    }
    # Coarser resolutions: each parent holds its worst child.
    with psycopg.connect(url) as conn:
        for res in (7, 8):
            rows = conn.execute(
                "SELECT cell, score FROM twin.risk_score WHERE layer_id = 'controlled' AND res = %s",
                (res,),
            ).fetchall()
            want: dict[int, float] = {}
            for cell, (score, _, _) in got.items():
                p = h3.str_to_int(h3.cell_to_parent(h3.int_to_str(cell), res))
                want[p] = max(want.get(p, 0.0), score)
            assert {int(r[0]): r[1] for r in rows} == want
        # The stored polygon is the cell's own boundary.
        hexid, ok = conn.execute(
            "SELECT twin.h3_to_hex(cell), ST_Equals(geom, ST_SetSRID(ST_GeomFromText(%s), 4326))"
            " FROM twin.risk_score WHERE layer_id = 'controlled' AND res = 9 AND cell = %s",
            (_wkt(a), a),
        ).fetchone()  # fmt: skip
        assert ok, hexid


def _wkt(cell: int) -> str:
    ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(h3.int_to_str(cell))]
    ring.append(ring[0])
    return "POLYGON((" + ", ".join(f"{x!r} {y!r}" for x, y in ring) + "))"


def test_snapshot_counts_levels_per_area(
    settings: Settings, cells: list[int], tmp_path: Path
) -> None:
    url = settings.database_url or ""
    compute_risk(url, load_catalog(_controlled_dir(tmp_path, cells)), resolutions=[9], k=K)
    with psycopg.connect(url) as conn:
        at = conn.execute("SELECT max(computed_at) FROM twin.risk_snapshot").fetchone()[0]  # type: ignore[index]
        snap = {
            (area, lvl): n
            for area, b, y, o, r in conn.execute(
                "SELECT area_id, blue, yellow, orange, red FROM twin.risk_snapshot"
                " WHERE layer_id = 'controlled' AND computed_at = %s", (at,),
            ).fetchall()
            for lvl, n in zip(("blue", "yellow", "orange", "red"), (b, y, o, r), strict=True)
        }  # fmt: skip
        # Independently: walk each scored cell's grid patch up to the root by parent_id.
        want: dict[tuple[int, str], int] = {}
        for cell, (_, level, _) in _scores(url, "controlled").items():
            (area,) = conn.execute(
                "SELECT area_id FROM twin.cell_stats WHERE res = 9 AND cell = %s", (cell,)
            ).fetchone()  # type: ignore[misc]
            while area is not None:
                want[(area, level)] = want.get((area, level), 0) + 1
                (area,) = conn.execute(
                    "SELECT parent_id FROM twin.admin_area WHERE id = %s", (area,)
                ).fetchone()  # type: ignore[misc]
        n_areas = conn.execute("SELECT count(*) FROM twin.admin_area").fetchone()[0]  # type: ignore[index]
    assert {k: v for k, v in snap.items() if v} == want
    assert len(snap) == 4 * n_areas  # every area has a row, zeros included (trends need them)


def test_shipped_catalog_against_direct_queries(settings: Settings) -> None:
    url = settings.database_url or ""
    catalog = load_catalog(project_root() / "layers", resolutions=settings.h3_resolutions)
    with psycopg.connect(url) as conn:
        v0 = conn.execute(
            "SELECT coalesce(max(version), 0) FROM twin.layer_version WHERE layer = 'risk_score'"
        ).fetchone()[0]  # type: ignore[index]
    result = compute_risk(url, catalog, resolutions=settings.h3_resolutions, k=K)
    assert set(result.levels) == {lyr.id for lyr in catalog.layers} | {"onemap"}
    with psycopg.connect(url) as conn:
        # special_equipment: buildings of 10+ floors per res-9 cell, straight from building.
        direct = dict(
            conn.execute(
                "SELECT twin.h3_parent(cell, 9), count(*) FROM twin.building WHERE floors >= 10"
                " GROUP BY 1"
            ).fetchall()
        )
        stored = {
            int(c): int(comp["highrises"]["value"])
            for c, comp in conn.execute(
                "SELECT cell, components FROM twin.risk_score"
                " WHERE layer_id = 'special_equipment' AND res = 9"
            ).fetchall()
        }
        assert stored == {int(k): v for k, v in direct.items()}
        # Every level agrees with the layer's thresholds.
        for lyr in catalog.layers:
            for score, level in conn.execute(
                "SELECT score, level FROM twin.risk_score WHERE layer_id = %s AND res = %s",
                (lyr.id, lyr.res),
            ).fetchall():
                t = lyr.levels
                want = ("red" if score >= t["red"] else "orange" if score >= t["orange"]
                        else "yellow" if score >= t["yellow"] else "blue")  # fmt: skip
                assert 0 < score <= 100 and level == want, (lyr.id, score, level)
        v1 = conn.execute(
            "SELECT version FROM twin.layer_version WHERE layer = 'risk_score'"
        ).fetchone()[0]  # type: ignore[index]
    assert v1 == v0 + 1


def test_a_failing_layer_changes_nothing(
    settings: Settings, cells: list[int], tmp_path: Path
) -> None:
    url = settings.database_url or ""
    compute_risk(url, load_catalog(_controlled_dir(tmp_path, cells)), resolutions=[9], k=K)
    before = _scores(url, "controlled")
    a, b, c, d = cells
    text = CONTROLLED.format(a=a, b=b, c=c, d=d)
    (tmp_path / "zz_broken.toml").write_text(
        text.replace('id = "controlled"', 'id = "zz_broken"').replace(
            "SELECT * FROM (VALUES", "SELECT * FROM twin.no_such_table, (VALUES"
        )
    )
    with pytest.raises(ComputeError, match=r"zz_broken\.toml: source\.sql"):
        compute_risk(url, load_catalog(tmp_path), resolutions=[9], k=K)
    (tmp_path / "zz_broken.toml").write_text(
        text.replace('id = "controlled"', 'id = "zz_broken"').replace("people)", "folk)")
    )
    with pytest.raises(ComputeError, match="returns no column 'people'"):
        compute_risk(url, load_catalog(tmp_path), resolutions=[9], k=K)
    assert _scores(url, "controlled") == before
