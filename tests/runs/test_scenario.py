"""``twin flood run SCENARIO.yaml``: raw files in, GeoTIFFs, probes CSV and a summary out."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import shapely
import yaml
from pyproj import Transformer
from typer.testing import CliRunner

from twin.cli import app

runner = CliRunner()
WEST, NORTH, CELL = 500_000.0, 3_350_000.0, 5.0
ROWS, COLS = 40, 60
CRS = "EPSG:32651"


def write_dem(
    path: Path, bed: np.ndarray, *, crs: str | None = CRS, nodata: float | None = None
) -> None:
    profile: dict[str, Any] = {
        "driver": "GTiff" if path.suffix == ".tif" else "AAIGrid",
        "width": bed.shape[1], "height": bed.shape[0], "count": 1, "dtype": "float32",
        "transform": rasterio.Affine(CELL, 0, WEST, 0, -CELL, NORTH), "nodata": nodata,
    }  # fmt: skip
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bed.astype(np.float32), 1)


def basin() -> np.ndarray:
    y, x = np.mgrid[0:ROWS, 0:COLS]
    return 10.0 + 0.01 * (x - 30) ** 2 + 0.02 * (y - 20) ** 2


def scenario(tmp: Path, **over: Any) -> Path:
    write_dem(tmp / "dem.tif", basin())
    spec: dict[str, Any] = {
        "dem": "dem.tif",
        "duration_s": 1800,
        "output_interval_s": 300,
        "rain": {"chicago": {"return_period_years": 20, "duration_min": 20}},
        "boundaries": {"east": "open"},
        "probes": [{"id": "centre", "x": WEST + 30.5 * CELL, "y": NORTH - 20.5 * CELL}],
    }
    spec.update(over)
    path = tmp / "scenario.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def run_json(path: Path, out: Path) -> dict[str, Any]:
    r = runner.invoke(app, ["flood", "run", str(path), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_a_scenario_writes_rasters_probes_and_a_summary(tmp_path: Path) -> None:
    (tmp_path / "inflow.csv").write_text("time_s,discharge_m3s\n0,0\n600,2\n1200,0\n")
    path = scenario(
        tmp_path,
        inflows=[{"id": "pipe", "x": WEST + 10 * CELL, "y": NORTH - 10 * CELL, "radius_m": 6,
                  "hydrograph": "inflow.csv"}],
        drainage=5.0,
    )  # fmt: skip
    s = run_json(path, tmp_path / "out")
    for name in ("max_depth.tif", "time_of_max.tif", "max_velocity.tif", "max_hazard.tif"):
        assert (tmp_path / "out" / name).is_file()
    assert s["volumes_m3"]["inflow"] == pytest.approx(0.5 * 1200 * 2, rel=1e-9)  # triangle
    assert abs(s["mass_error_rel"]) < 1e-10
    assert s["steps"] > 0 and s["cell_steps_per_s"] > 0 and s["wall_s"] >= 0
    probe = s["probes"][0]
    with rasterio.open(tmp_path / "out" / "max_depth.tif") as src:
        assert src.crs.to_epsg() == 32651
        depth = src.read(1)[20, 30]
    assert probe["max_depth_m"] == pytest.approx(float(depth), abs=1e-6)
    assert probe["max_level_m"] == pytest.approx(basin()[20, 30] + depth, abs=1e-5)
    assert 0 < probe["time_of_max_s"] <= 1800
    with (tmp_path / "out" / "probes.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["time_s"]) for r in rows] == [0, 300, 600, 900, 1200, 1500, 1800]
    assert max(float(r["depth_m"]) for r in rows) <= probe["max_depth_m"] + 1e-9
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == s


def test_an_esri_ascii_dem_with_a_named_crs(tmp_path: Path) -> None:
    write_dem(tmp_path / "dem.asc", basin(), crs=None)
    path = scenario(tmp_path, dem="dem.asc", crs=CRS)
    s = run_json(path, tmp_path / "out")
    assert s["grid"] == {"rows": ROWS, "cols": COLS, "cell_m": CELL, "crs": CRS}
    assert s["volumes_m3"]["rain"] > 0


def test_buildings_in_another_crs_are_reprojected_and_raise_the_bed(tmp_path: Path) -> None:
    # A 20 m square building in lon/lat over cells rows 4-7, cols 44-47 of the UTM grid.
    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    x0, y0 = WEST + 44 * CELL, NORTH - 8 * CELL
    ring = [
        to_ll.transform(x, y)
        for x, y in [(x0, y0), (x0 + 20, y0), (x0 + 20, y0 + 20), (x0, y0 + 20)]
    ]
    feature = {
        "type": "Feature",
        "properties": {"h": 12.0},
        "geometry": shapely.geometry.mapping(shapely.Polygon(ring)),
    }
    (tmp_path / "b.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": [feature]})
    )
    path = scenario(
        tmp_path, buildings={"path": "b.geojson", "mode": "raise", "height_field": "h"},
        probes=[{"id": "roof", "x": x0 + 10, "y": y0 + 10}],
    )  # fmt: skip
    s = run_json(path, tmp_path / "out")
    assert any("reprojected" in n for n in s["notes"])
    roof = s["probes"][0]
    assert roof["max_level_m"] - roof["max_depth_m"] == pytest.approx(basin()[6, 46] + 12, abs=1e-4)
    # Blocked instead: no water and no max depth inside it.
    path = scenario(tmp_path, buildings={"path": "b.geojson", "mode": "block"})
    run_json(path, tmp_path / "out2")
    with rasterio.open(tmp_path / "out2" / "max_depth.tif") as src:
        inside = src.read(1)[5:7, 45:47]
    assert np.isnan(inside).all()


def fails(path: Path, tmp: Path, *needles: str) -> None:
    r = runner.invoke(app, ["flood", "run", str(path), "--out", str(tmp / "out")])
    assert r.exit_code == 2, r.output
    for needle in needles:
        assert needle in r.output, r.output
    assert not (tmp / "out").exists()


def test_a_dem_with_nodata_holes_is_refused_under_nodata_error(tmp_path: Path) -> None:
    bed = basin()
    bed[3, 7] = -9999
    path = scenario(tmp_path, nodata="error")
    write_dem(tmp_path / "dem.tif", bed, nodata=-9999)
    fails(path, tmp_path, "dem", "1 nodata cells", "row 3, col 7")


def test_missing_files_negative_rain_and_outside_probes_are_refused(tmp_path: Path) -> None:
    fails(scenario(tmp_path, dem="nope.tif"), tmp_path, "dem", "not found")
    fails(scenario(tmp_path, rain={"constant_mm_h": -5}), tmp_path, "rain.constant_mm_h")
    fails(
        scenario(tmp_path, rain={"series": [[0, 10], [60, -1]]}),
        tmp_path,
        "rain.series",
        "negative",
    )
    fails(
        scenario(tmp_path, probes=[{"id": "far", "x": 0, "y": 0}]),
        tmp_path,
        "probes[0] (far)",
        "outside",
    )
    fails(scenario(tmp_path, buildings={"path": "none.geojson"}), tmp_path, "buildings.path")
    fails(scenario(tmp_path, duration_s=-1), tmp_path, "duration_s")
    fails(scenario(tmp_path, surprise=1), tmp_path, "surprise")
    missing = tmp_path / "missing.yaml"
    fails(missing, tmp_path, "not found")


def test_a_dem_in_degrees_or_with_a_clashing_crs_is_refused(tmp_path: Path) -> None:
    path = scenario(tmp_path, crs="EPSG:32650")
    fails(path, tmp_path, "crs", "EPSG:32650")
    write_dem(tmp_path / "deg.tif", basin(), crs="EPSG:4326")
    fails(scenario(tmp_path, dem="deg.tif"), tmp_path, "dem", "metres")


def test_buildings_without_a_crs_are_refused(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text('wkt\n"POLYGON((0 0,1 0,1 1,0 0))"\n')
    fails(scenario(tmp_path, buildings={"path": "b.csv"}), tmp_path, "b.csv", "CRS")


def test_dem_nodata_is_closed_by_default_and_filled_on_request(tmp_path: Path) -> None:
    """73 nodata cells on a closed edge (as in the real DEM that was refused) and one hole in a
    street: by default all are walls, and the summary says how many and how."""
    bed = basin()
    bed[:, :1] = -9999  # 40 on the west edge
    bed[:33, 1] = -9999  # 33 more beside them
    bed[20, 30] = -9999  # the probe's cell: a one-cell hole
    spec = yaml.safe_load(scenario(tmp_path).read_text())  # (writes the plain basin)
    write_dem(tmp_path / "dem.tif", bed, nodata=-9999)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    s = run_json(tmp_path / "s.yaml", tmp_path / "out")
    assert s["nodata"] == {"rule": "closed", "cells": 74, "holes": 2, "closed": 74, "filled": 0}
    assert abs(s["mass_error_rel"]) < 1e-10
    with rasterio.open(tmp_path / "out" / "max_depth.tif") as src:
        depth = src.read(1)
    assert np.isnan(depth[:, 0]).all() and np.isnan(depth[20, 30])
    # fill: the west strip is too large a hole; with it valid, the single hole is interpolated.
    spec["nodata"] = "fill"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    fails(tmp_path / "s.yaml", tmp_path / "f", "dem", "hole of 73 cells", "nodata_max_hole_cells")
    bed[:, :2] = basin()[:, :2]
    write_dem(tmp_path / "dem.tif", bed, nodata=-9999)
    s = run_json(tmp_path / "s.yaml", tmp_path / "out3")
    assert s["nodata"] == {"rule": "fill", "cells": 1, "holes": 1, "closed": 0, "filled": 1}
    b = basin()
    mean4 = (b[19, 30] + b[21, 30] + b[20, 29] + b[20, 31]) / 4
    probe = s["probes"][0]
    assert probe["max_level_m"] - probe["max_depth_m"] == pytest.approx(mean4, abs=1e-4)


def strip(tmp: Path, name: str, x0: float, width: float) -> str:
    """A north-south strip polygon ``width`` m wide from ``x0`` (m east of the grid's west)."""
    poly = shapely.box(WEST + x0, NORTH - ROWS * CELL, WEST + x0 + width, NORTH)
    feature = {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(poly)}
    fc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": CRS}},
          "features": [feature]}  # fmt: skip
    (tmp / name).write_text(json.dumps(fc))
    return name


@pytest.mark.parametrize("shift", [0.0, 1.3, 2.6])
def test_manning_polygons_by_area_share_do_not_depend_on_where_they_fall(
    tmp_path: Path, shift: float
) -> None:
    """A 7 m rough strip (n 0.1) on a 5 m grid with n 0.02: by centres it burns one or two
    columns (0.1 over 5 or 10 m) as it slides against the grid; by area share every position
    gives the strip's n² times its width, summed across a row."""
    from twin.runs.scenario import load

    write_dem(tmp_path / "dem.tif", basin())
    name = strip(tmp_path, "rough.geojson", 101.0 + shift, 7.0)
    exact = 7.0 * (0.1**2 - 0.02**2)  # Σ (n² - 0.02²) dx along a row: the strip's friction
    for coverage, tol in (("area", 0.05), ("centre", None)):
        spec = {"dem": "dem.tif", "duration_s": 10,
                "manning": {"default": 0.02, "coverage": coverage,
                            "polygons": [{"path": name, "n": 0.1}]}}  # fmt: skip
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
        row = load(tmp_path / "s.yaml").manning[5]
        total = float((row**2 - 0.02**2).sum() * CELL)
        if tol is not None:
            assert total == pytest.approx(exact, rel=tol), coverage
        else:
            burned = int((row > 0.05).sum())
            assert burned in (1, 2)
            assert abs(total - exact) / exact > 0.25  # 5 or 10 m where the strip is 7 m


def test_the_solver_friction_option_reaches_the_run_and_a_bad_one_is_refused(
    tmp_path: Path,
) -> None:
    # A symmetric basin under uniform rain: both rules keep the water (mass to round-off); the
    # option must change the run (the flow into the basin crosses the grid's diagonals).
    runs = {}
    for rule in ("vector", "face"):
        path = scenario(tmp_path, solver={"friction": rule})
        runs[rule] = run_json(path, tmp_path / rule)
        assert abs(runs[rule]["mass_error_rel"]) < 1e-10
    assert runs["vector"]["probes"][0] != runs["face"]["probes"][0]
    fails(scenario(tmp_path, solver={"friction": "diagonal"}), tmp_path, "solver.friction")
