"""``twin export buildings --format cityjson|cityjsonseq``, read back by cjio (PyPI) and
checked geometrically against PostGIS: each LoD1 solid is a closed shell oriented outwards
whose volume is the footprint's area (``ST_Area`` in the city CRS) times the height.

cjio's own ``validate`` needs ``cjvalpy``, which has no installable distribution for this
Python. Its schema check is made here with ``jsonschema`` against the official CityJSON 2.0.2
schemas (tests/data/cityjson, CC0), and cjio's reader, its OBJ export (which triangulates every
surface) and the closed-shell and volume checks go further."""

from __future__ import annotations

import gzip
import json
import json.encoder
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from twin.settings import Settings

# cjio patches the json module on import (its own float encoder, rounding every float to a few
# decimals, for all json.dumps in the process): undo it at once, or every later test that
# writes JSON in this session would see rounded numbers.
_JSON_ENCODER = dict(vars(json.encoder))
from cjio import cityjson  # noqa: E402

json.encoder.c_make_encoder = _JSON_ENCODER["c_make_encoder"]
if "float" not in _JSON_ENCODER:
    del json.encoder.float  # type: ignore[attr-defined]


SCHEMAS = Path(__file__).parent.parent / "data" / "cityjson"


def _validator(name: str) -> jsonschema.Draft7Validator:
    """The official CityJSON 2.0.2 schema ``name`` (cityjson or cityjsonfeature)."""
    with gzip.open(SCHEMAS / f"{name}-2.0.2.min.schema.json.gz", "rt", encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _schema_errors(validator: jsonschema.Draft7Validator, doc: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)][:5]


def _twin(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(TWIN_DATABASE_URL=settings.database_url or "", TWIN_DATA_DIR=str(settings.data_dir))
    return subprocess.run(
        [sys.executable, "-m", "twin", "export", *args], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def _truth(settings: Settings) -> tuple[str, dict[str, tuple[float, float]]]:
    """The city CRS and, per building with a height, (footprint area in it m², height m)."""
    with psycopg.connect(settings.database_url or "") as c:
        ((crs,),) = c.execute("SELECT crs FROM twin.city_meta")
        srid = int(str(crs).split(":")[1])
        rows = c.execute(
            "SELECT id, ST_Area(ST_Transform(geom, %s)), coalesce(height_m, floors * 3.0)"
            " FROM twin.building WHERE coalesce(height_m, floors * 3.0) > 0",
            (srid,),
        ).fetchall()
    return str(crs), {f"building-{i}": (float(a), float(h)) for i, a, h in rows}


def _shell_volume(shell: list[Any], verts: np.ndarray) -> tuple[float, Counter[tuple[int, int]]]:
    """Signed volume of a shell (divergence theorem over fan triangles) and its directed
    edges."""
    vol = 0.0
    edges: Counter[tuple[int, int]] = Counter()
    for surface in shell:
        for ring in surface:
            for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
                edges[(a, b)] += 1
            p = verts[ring]
            for i in range(1, len(ring) - 1):
                vol += float(np.dot(p[0], np.cross(p[i], p[i + 1]))) / 6.0
    return vol, edges


def _check_buildings(objects: dict[str, Any], verts: np.ndarray, truth: dict[str, Any]) -> None:
    assert set(objects) == set(truth)
    for oid, obj in objects.items():
        area, height = truth[oid]
        (geom,) = obj["geometry"]
        assert geom["lod"] == "1" and obj["type"] == "Building"
        shells = [geom["boundaries"]] if geom["type"] == "Solid" else geom["boundaries"]
        total = 0.0
        for (shell,) in shells:
            vol, edges = _shell_volume(shell, verts)
            # Closed: every edge is walked once each way (a 2-manifold shell).
            assert all(edges[(b, a)] == n == 1 for (a, b), n in edges.items()), oid
            total += vol
        # Outwards (positive) and the extrusion's volume, to the millimetre grid.
        assert total == pytest.approx(area * height, rel=1e-3, abs=0.5), oid
        assert obj["attributes"]["measuredHeight"] == pytest.approx(height)
        kinds = [s["type"] for s in geom["semantics"]["surfaces"]]
        assert kinds == ["GroundSurface", "RoofSurface", "WallSurface"]


def test_cityjson_reads_in_cjio_and_is_the_extruded_footprints(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "b.city.json"
    r = _twin(tiny_settings, "buildings", "--format", "cityjson", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    crs, truth = _truth(tiny_settings)
    assert json.loads(r.stdout)["rows"] == len(truth) > 0
    with out.open() as f:
        cm = cityjson.CityJSON(file=f)
    assert cm.get_version() == "2.0"
    assert str(cm.get_epsg()) == crs.split(":")[1]
    assert "CityJSON version = 2.0" in "\n".join(cm.get_info())
    j = cm.j
    verts = np.asarray(j["vertices"], float) * j["transform"]["scale"] + j["transform"]["translate"]
    _check_buildings(j["CityObjects"], verts, truth)
    # cjio's OBJ export triangulates every surface of every solid.
    obj = tmp_path / "b.obj"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cjio"), str(out), "export", "obj", str(obj)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    faces = sum(1 for line in obj.read_text().splitlines() if line.startswith("f "))
    assert faces >= 4 * len(truth)  # at least floor, roof and two wall triangles each


def test_cityjsonseq_streams_one_feature_per_building(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "b.city.jsonl"
    r = _twin(tiny_settings, "buildings", "--format", "cityjsonseq", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    _, truth = _truth(tiny_settings)
    first, *features = [json.loads(line) for line in out.read_text().splitlines()]
    assert first["type"] == "CityJSON" and first["version"] == "2.0" and first["CityObjects"] == {}
    scale, translate = first["transform"]["scale"], first["transform"]["translate"]
    objects: dict[str, Any] = {}
    for feat in features:
        assert feat["type"] == "CityJSONFeature" and list(feat["CityObjects"]) == [feat["id"]]
        verts = np.asarray(feat["vertices"], float) * scale + translate
        _check_buildings(feat["CityObjects"], verts, {feat["id"]: truth[feat["id"]]})
        objects.update(feat["CityObjects"])
    assert set(objects) == set(truth)
    # cjio reads the sequence back (its stdin reader takes CityJSONSeq).
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cjio"), "stdin", "info"], input=out.read_text(),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CityJSON version = 2.0" in done.stdout


def test_cityjson_is_for_buildings_only(tiny_settings: Settings, tmp_path: Path) -> None:
    r = _twin(tiny_settings, "roads", "--format", "cityjson", "--out", str(tmp_path / "r.json"))
    assert r.returncode == 2 and "--format" in r.stderr + r.stdout


def test_the_download_is_the_same_cityjson(
    tiny_client: TestClient, tiny_settings: Settings
) -> None:
    r = tiny_client.get("/collections/buildings/items?f=cityjson")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/city+json")
    assert r.headers["content-disposition"].endswith('buildings.city.json"')
    cm = cityjson.CityJSON(j=r.json())
    assert cm.get_version() == "2.0"
    j = cm.j
    verts = np.asarray(j["vertices"], float) * j["transform"]["scale"] + j["transform"]["translate"]
    _check_buildings(j["CityObjects"], verts, _truth(tiny_settings)[1])
    seq = tiny_client.get("/collections/buildings/items?f=cityjsonseq")
    assert seq.status_code == 200
    assert seq.headers["content-type"].startswith("application/city+json-seq")
    bad = tiny_client.get("/collections/roads/items?f=cityjson")
    assert bad.status_code == 400 and "buildings only" in bad.text


def test_cityjson_and_cityjsonseq_validate_against_the_official_schemas(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    whole = tmp_path / "b.city.json"
    seq = tmp_path / "b.city.jsonl"
    for fmt, out in (("cityjson", whole), ("cityjsonseq", seq)):
        r = _twin(tiny_settings, "buildings", "--format", fmt, "--out", str(out))
        assert r.returncode == 0, r.stderr[-2000:]
    city, feature = _validator("cityjson"), _validator("cityjsonfeature")
    doc = json.loads(whole.read_text())
    assert doc["CityObjects"] and _schema_errors(city, doc) == []
    first, *features = [json.loads(line) for line in seq.read_text().splitlines()]
    assert _schema_errors(city, first) == []
    assert features and all(_schema_errors(feature, f) == [] for f in features)
    # The validator does catch what the schema forbids: a surface type that CityJSON has not,
    # and a city without its vertices.
    some = next(iter(doc["CityObjects"].values()))
    some["geometry"][0]["semantics"]["surfaces"][0]["type"] = "RoofTop"
    assert _schema_errors(city, doc)
    del first["vertices"]
    assert _schema_errors(city, first)
