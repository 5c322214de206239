"""The incremental refresh after a building ingest against a full `twin risk compute`: after the
same ingest, at the same ``as_of``, every layer's and the one map's rows at every resolution and
cell are the same (score, level, components, small-count flag), and fewer rows are rewritten."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import psycopg
import pytest
import shapely

from twin import grid
from twin.alerts.refresh import refresh
from twin.city.demo import build_demo
from twin.ingest.vector import ingest_vector
from twin.risk.catalog import load_catalog
from twin.risk.compute import compute_risk
from twin.risk.incremental import (
    BUILDING_STAT_COLUMNS,
    can_refresh,
    reads_changed_columns,
    refresh_cells,
    tables_read,
)
from twin.settings import Settings, project_root

K = 10
RES = [7, 8, 9, 10]
AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
# A layer that ranks cells by their storeys: one new tower moves every other cell's rank.
RANKED = """
id = "storeys_rank"
title = "Storeys (rank)"
title_zh = "楼层排名"
family = "public_safety"
[source]
sql = \"\"\"
SELECT twin.h3_parent(cell, %(res)s) AS cell, sum(floors)::float8 AS storeys, count(*) AS n
FROM twin.building WHERE cell IS NOT NULL GROUP BY 1
\"\"\"
[[inputs]]
name = "storeys"
normalise = "quantile"
weight = 2
[[inputs]]
name = "n"
normalise = "log"
max = 50
weight = 1
[levels]
yellow = 25
orange = 50
red = 75
"""


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    layers = tmp_path_factory.mktemp("layers")
    for f in (project_root() / "layers").glob("*.toml"):
        shutil.copy(f, layers / f.name)
    (layers / "storeys_rank.toml").write_text(RANKED, encoding="utf-8")
    s = Settings(_env_file=None, database_url=make_database("twin_risk_incr"),
                 data_dir=tmp_path_factory.mktemp("risk-incr"), suppression_k=K,
                 layers_dir=layers)  # fmt: skip
    build_demo(s, size="tiny", seed=7)
    return s


def _buildings(url: str, path: Path, n: int, seed: int) -> Path:
    """``n`` small footprints: most in cells that have buildings, some towers, a few in a cell
    of their own just outside the city."""
    with psycopg.connect(url) as conn:
        cells = [int(c) for (c,) in conn.execute(
            "SELECT cell FROM twin.cell_stats WHERE res = 9 AND buildings > 0 ORDER BY cell"
        )]  # fmt: skip
    rng = np.random.default_rng(seed)
    picked = rng.choice(np.asarray(cells, dtype=np.int64), size=n)
    lon, lat = grid.cell_centers(picked)
    lon[-3:] = lon.max() + 0.05  # east of the city: new cells
    lon = lon + rng.uniform(-0.0015, 0.0015, n)
    lat = lat + rng.uniform(-0.0015, 0.0015, n)
    boxes = shapely.box(lon, lat, lon + 0.0002, lat + 0.00015)
    floors = np.where(rng.random(n) < 0.3, rng.integers(10, 40, n), rng.integers(1, 9, n))
    gdf = gpd.GeoDataFrame({"source_id": [f"incr-{seed}-{i}" for i in range(n)],
                            "floors": floors, "use": "residential"},
                           geometry=boxes, crs="EPSG:4326")  # fmt: skip
    gdf.to_file(path, driver="GeoJSON")
    return path


def _rows(url: str) -> dict[tuple[str, int, int], tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT layer_id, res, cell, score, level, components, small_count FROM twin.risk_score"
        ).fetchall()
    return {(lid, res, int(c)): (s, lv, comp, sm) for lid, res, c, s, lv, comp, sm in rows}


def test_storey_layer_reads_buildings() -> None:
    catalog = load_catalog(project_root() / "layers")
    fire = catalog.get("fire")
    special = catalog.get("special_equipment")
    assert fire is not None and special is not None
    assert tables_read(fire) == {"cell_stats", "event"}
    assert tables_read(special) == {"building"}  # twin.h3_parent( is a function


def test_incremental_refresh_equals_full_compute(settings: Settings, tmp_path: Path) -> None:
    url = settings.database_url or ""
    catalog = load_catalog(settings.layers_dir, resolutions=RES)
    assert not catalog.errors
    assert not can_refresh(url, catalog)  # nothing computed in full yet
    compute_risk(url, catalog, resolutions=RES, k=K, as_of=AS_OF)
    assert can_refresh(url, catalog)
    before = _rows(url)
    report = ingest_vector("buildings", _buildings(url, tmp_path / "b.geojson", 60, 1), settings)
    assert report.loaded == 60 and report.changed_cells

    # The ingest's own list of the cells that gained or lost a statistics row (the CLI's path;
    # the next test leaves it out, so that refresh_cells looks for them itself).
    assert report.rowset_cells  # the three footprints east of the city are in new cells
    out = refresh_cells(url, catalog, report.changed_cells, resolutions=RES, k=K, as_of=AS_OF,
                        rowset_cells=report.rowset_cells)  # fmt: skip
    incremental = _rows(url)
    compute_risk(url, catalog, resolutions=RES, k=K, as_of=AS_OF)
    full = _rows(url)

    assert incremental.keys() == full.keys()
    wrong = [k for k in full if incremental[k] != full[k]]
    assert not wrong, wrong[:5]
    # The ingest did change scores, and the refresh rewrote only those rows.
    moved = {k for k in full.keys() | before.keys() if full.get(k) != before.get(k)}
    assert {k[0] for k in moved} >= {"special_equipment", "storeys_rank", "onemap"}
    assert out["layers"]["storeys_rank"]["full"] is True
    assert out["layers"]["special_equipment"]["full"] is False
    assert "traffic_congestion" not in out["layers"]  # reads traffic results only: untouched
    assert 0 < out["rows"] <= 2 * len(moved)
    assert out["rows"] < len(full)


def test_second_ingest_patches_a_patched_map(settings: Settings, tmp_path: Path) -> None:
    """Refreshes chain: a second ingest on top of an incremental refresh still matches."""
    url = settings.database_url or ""
    catalog = load_catalog(settings.layers_dir, resolutions=RES)
    compute_risk(url, catalog, resolutions=RES, k=K, as_of=AS_OF)
    for seed in (2, 3):
        report = ingest_vector(
            "buildings", _buildings(url, tmp_path / f"b{seed}.geojson", 25, seed), settings
        )
        refresh_cells(url, catalog, report.changed_cells, resolutions=RES, k=K, as_of=AS_OF)
    incremental = _rows(url)
    compute_risk(url, catalog, resolutions=RES, k=K, as_of=AS_OF)
    assert incremental == _rows(url)


def test_refresh_patches_only_a_full_compute_of_the_current_files(
    settings: Settings, tmp_path: Path
) -> None:
    """The ingest's refresh: incremental after a full compute, in full once a layer file is
    newer than the last full compute (its scores may rest on the old file)."""
    url = settings.database_url or ""
    catalog = load_catalog(settings.layers_dir, resolutions=RES)
    compute_risk(url, catalog, resolutions=RES, k=K, as_of=AS_OF)
    report = ingest_vector("buildings", _buildings(url, tmp_path / "b.geojson", 10, 4), settings)
    patched = refresh(settings, at=AS_OF, cells=report.changed_cells)["risk"]
    assert "rows" in patched and "computed_at" not in patched
    later = time.time() + 5
    os.utime(settings.layers_dir / "fire.toml", (later, later))
    catalog = load_catalog(settings.layers_dir, resolutions=RES)
    assert not can_refresh(url, catalog)
    full = refresh(settings, at=AS_OF, cells=report.changed_cells)["risk"]
    assert "computed_at" in full


def test_a_count_hidden_elsewhere_flags_the_stored_score(settings: Settings) -> None:
    """The suppression model decides the whole city again after each ingest: a cell that now
    hides a count gets its people scores flagged, though its inputs did not change."""
    url = settings.database_url or ""
    catalog = load_catalog(settings.layers_dir, resolutions=RES)
    compute_risk(url, catalog, resolutions=RES, k=K, as_of=AS_OF)
    with psycopg.connect(url) as conn:
        cell = conn.execute(
            "SELECT r.cell FROM twin.risk_score r JOIN twin.cell_stats s"
            " ON s.res = r.res AND s.cell = r.cell WHERE r.layer_id = 'crowd_density'"
            " AND r.res = 9 AND NOT r.small_count AND cardinality(s.hidden) = 0"
            " ORDER BY r.cell LIMIT 1"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "UPDATE twin.cell_stats SET hidden = '{jobs}' WHERE res = 9 AND cell = %s", (cell,)
        )
    out = refresh_cells(url, catalog, [], resolutions=RES, k=K, tables=(), as_of=AS_OF)
    assert out["layers"]["crowd_density"]["changed"] == 1
    assert "fire" not in out["layers"]  # no people input: nothing to flag
    incremental = _rows(url)
    assert incremental[("crowd_density", 9, cell)][3] is True
    compute_risk(url, catalog, resolutions=RES, k=K, as_of=AS_OF)
    assert incremental == _rows(url)


def test_which_layers_read_what_a_building_ingest_changes() -> None:
    catalog = load_catalog(project_root() / "layers")
    by_id = {lyr.id: lyr for lyr in catalog.layers}
    assert reads_changed_columns(by_id["fire"], BUILDING_STAT_COLUMNS)  # heights, floor area
    for lid in ("crowd_density", "elderly_alone", "hazardous_chemicals"):
        assert not reads_changed_columns(by_id[lid], BUILDING_STAT_COLUMNS), lid
    assert reads_changed_columns(by_id["crowd_density"], None)  # any column may have changed
    whole = dataclasses.replace(by_id["crowd_density"],
                                sql="SELECT s.* FROM twin.cell_stats s")  # fmt: skip
    assert reads_changed_columns(whole, BUILDING_STAT_COLUMNS)


STAT_COLUMNS_SQL = """
SELECT column_name FROM information_schema.columns
WHERE table_schema = 'twin' AND table_name = 'cell_stats'
  AND column_name NOT IN ('res', 'cell', 'updated_at', 'geom', 'geom_3857')
"""


def test_a_building_ingest_changes_only_the_building_statistics(
    settings: Settings, tmp_path: Path
) -> None:
    """What refresh_cells assumes of BUILDING_STAT_COLUMNS, checked on a real ingest: rows
    kept by the ingest differ in those columns only."""
    url = settings.database_url or ""
    with psycopg.connect(url) as c:
        columns = [r[0] for r in c.execute(STAT_COLUMNS_SQL)]
        select = "SELECT res, cell, " + ", ".join(f"{x}::text" for x in columns) + \
            " FROM twin.cell_stats"  # fmt: skip
        before = {(r[0], r[1]): r[2:] for r in c.execute(select)}  # type: ignore[arg-type]
    report = ingest_vector("buildings", _buildings(url, tmp_path / "s.geojson", 40, 9), settings)
    assert report.loaded == 40
    with psycopg.connect(url) as c:
        after = {(r[0], r[1]): r[2:] for r in c.execute(select)}  # type: ignore[arg-type]
    changed = {
        columns[i]
        for key in before.keys() & after.keys()
        for i, (a, b) in enumerate(zip(before[key], after[key], strict=True))
        if a != b
    }
    assert changed, "the ingest changed no statistics: the check would prove nothing"
    assert changed <= set(BUILDING_STAT_COLUMNS), changed - set(BUILDING_STAT_COLUMNS)
    # The cells it reports as having gained or lost a row are those the two reads disagree on.
    came_or_went = {cell for _, cell in before.keys() ^ after.keys()}
    assert came_or_went, "no cell gained a row: the check would prove nothing"
    assert set(report.rowset_cells) == came_or_went
