"""Buildings as CityJSON 2.0 and CityJSONSeq: LoD1 solids extruded from footprint and height.

Each building is a ``Building`` with one LoD1 geometry: a ``Solid`` (a ``MultiSolid`` for a
multi-part footprint) whose shell is the floor (``GroundSurface``, at z = 0), the roof
(``RoofSurface``, at the building's height) and a wall per footprint edge (``WallSurface``),
every surface oriented outwards, vertices shared between the surfaces, coordinates in the
city's projected CRS quantised to millimetres (``transform``). The attributes are the
twin's: ``measuredHeight`` (m), ``storeysAboveGround``, ``use``, ``footprint_m2``, ``h3``.
A building without a height (and without floors to estimate it from, 3 m a floor) has no
LoD1 and is left out.

The rows are the export query's (twin.exports.source: the caller's rows, the same filters),
in Arrow batches; batches are written as they come. The CityJSON file holds the vertices of
all buildings (one list of integers, written at the end); CityJSONSeq writes each building
as one ``CityJSONFeature`` line with its own vertices after a first ``CityJSON`` line.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.polygon import orient

from twin.exports.writers import ExportFormat, Tally

VERSION = "2.0"
SCALE = 0.001  # millimetres
FLOOR_M = 3.0  # height of a floor where only the floors are known (m)

FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("cityjson", "application/city+json", ".city.json"),
        ExportFormat("cityjsonseq", "application/city+json-seq", ".city.jsonl"),
    )
}


def reference_system(crs: str) -> str:
    """The OGC CRS URI CityJSON names the reference system with."""
    code = CRS.from_user_input(crs).to_epsg()
    if code is None:
        raise ValueError(f"the city CRS {crs!r} has no EPSG code")
    return f"https://www.opengis.net/def/crs/EPSG/0/{code}"


def _height(row: dict[str, Any]) -> float | None:
    h = row.get("height_m")
    if h is not None and h > 0:
        return float(h)
    floors = row.get("floors")
    return float(floors) * FLOOR_M if floors else None


class _Vertices:
    """Integer vertices of one file or one feature. A vertex is shared between the surfaces
    of one building (the index of the building being written); :meth:`forget` drops that
    index before the next one, so memory holds the flat integers only."""

    def __init__(self, translate: tuple[float, float, float]) -> None:
        self.translate = translate
        self.flat = array("q")
        self.index: dict[tuple[int, int, int], int] = {}
        self.bounds = [float("inf")] * 3 + [float("-inf")] * 3

    def add(self, x: float, y: float, z: float) -> int:
        key = (round((x - self.translate[0]) / SCALE), round((y - self.translate[1]) / SCALE),
               round((z - self.translate[2]) / SCALE))  # fmt: skip
        found = self.index.get(key)
        if found is not None:
            return found
        self.index[key] = i = len(self.flat) // 3
        self.flat.extend(key)
        for k, v in enumerate((x, y, z)):
            self.bounds[k] = min(self.bounds[k], v)
            self.bounds[k + 3] = max(self.bounds[k + 3], v)
        return i

    def forget(self) -> None:
        self.index.clear()

    def write(self, f: IO[str], block: int = 30_000) -> None:
        """The vertices as a JSON array of [x, y, z], a block at a time (flat memory)."""
        f.write("[")
        flat = self.flat
        for start in range(0, len(flat), 3 * block):
            part = flat[start : start + 3 * block]
            text = ",".join(
                f"[{part[i]},{part[i + 1]},{part[i + 2]}]" for i in range(0, len(part), 3)
            )
            f.write(("," if start else "") + text)
        f.write("]")

    def as_lists(self) -> list[list[int]]:
        f = self.flat
        return [[f[i], f[i + 1], f[i + 2]] for i in range(0, len(f), 3)]


def _solid(poly: Any, height: float, verts: _Vertices) -> tuple[list[Any], list[int]]:
    """The shell (floor, roof, walls) of one extruded polygon and its semantic values."""
    poly = orient(poly, 1.0)  # exterior counter-clockwise, holes clockwise (seen from above)
    rings = [list(poly.exterior.coords)[:-1], *(list(r.coords)[:-1] for r in poly.interiors)]
    low = [[verts.add(x, y, 0.0) for x, y, *_ in ring] for ring in rings]
    high = [[verts.add(x, y, height) for x, y, *_ in ring] for ring in rings]
    floor = [list(reversed(r)) for r in low]  # seen from below: counter-clockwise
    roof = [list(r) for r in high]
    walls = []
    for lo, hi in zip(low, high, strict=True):
        n = len(lo)
        walls += [[[lo[i], lo[(i + 1) % n], hi[(i + 1) % n], hi[i]]] for i in range(n)]
    return [floor, roof, *walls], [0, 1, *([2] * len(walls))]


def city_object(row: dict[str, Any], geom: Any, verts: _Vertices) -> dict[str, Any] | None:
    """The CityJSON ``Building`` of a row (geometry in the projected CRS), None without LoD1."""
    height = _height(row)
    parts = list(getattr(geom, "geoms", [geom]))
    if height is None or not parts or geom.is_empty:
        return None
    shells = [_solid(p, height, verts) for p in parts]
    surfaces = [{"type": "GroundSurface"}, {"type": "RoofSurface"}, {"type": "WallSurface"}]
    if len(shells) == 1:
        ((shell, values),) = shells
        geometry = {"type": "Solid", "lod": "1", "boundaries": [shell],
                    "semantics": {"surfaces": surfaces, "values": [values]}}  # fmt: skip
    else:
        geometry = {
            "type": "MultiSolid", "lod": "1", "boundaries": [[s] for s, _ in shells],
            "semantics": {"surfaces": surfaces, "values": [[v] for _, v in shells]},
        }  # fmt: skip
    attributes = {"measuredHeight": height, "storeysAboveGround": row.get("floors"),
                  "use": row.get("use"), "footprint_m2": row.get("footprint_m2"),
                  "h3": row.get("h3"), "height_estimated": row.get("height_m") is None}  # fmt: skip
    kept = {k: v for k, v in attributes.items() if v is not None}
    return {"type": "Building", "attributes": kept, "geometry": [geometry]}


def _rows(batch: pa.RecordBatch, to_crs: Transformer) -> Iterable[tuple[dict[str, Any], Any]]:
    geoms = shapely.from_wkb(batch.column("geometry").to_numpy(zero_copy_only=False))

    def project(xy: np.ndarray) -> np.ndarray:
        x, y = to_crs.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    geoms = shapely.transform(geoms, project)
    props = [n for n in batch.schema.names if n not in ("fid", "geometry", "bbox")]
    cols = {n: batch.column(n).to_pylist() for n in props}
    for i, fid in enumerate(batch.column("fid").to_pylist()):
        yield {"fid": fid, **{n: cols[n][i] for n in props}}, geoms[i]


def _transform_for(
    batches: Iterable[pa.RecordBatch], to_crs: Transformer
) -> tuple[list[pa.RecordBatch], tuple[float, float, float]]:
    """The first non-empty batch (kept) and a translation near its first vertex."""
    kept = []
    for b in batches:
        kept.append(b)
        if b.num_rows:
            g = shapely.from_wkb(b.column("geometry")[0].as_py())
            x, y = to_crs.transform(*g.representative_point().coords[0])
            return kept, (float(round(x)), float(round(y)), 0.0)
    return kept, (0.0, 0.0, 0.0)


def _header(crs: str, translate: tuple[float, float, float]) -> dict[str, Any]:
    return {"type": "CityJSON", "version": VERSION,
            "transform": {"scale": [SCALE] * 3, "translate": list(translate)},
            "metadata": {"referenceSystem": reference_system(crs)}}  # fmt: skip


def write_cityjson(
    batches: Iterable[pa.RecordBatch], path: Path, *, crs: str, seq: bool = False
) -> Tally:
    """Write the export query's batches (buildings) as CityJSON (``seq``: CityJSONSeq)."""
    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    it = iter(batches)
    first, translate = _transform_for(it, to_crs)
    tally = Tally()

    def all_batches() -> Iterable[pa.RecordBatch]:
        yield from first
        yield from it

    with path.open("w", encoding="utf-8") as f:
        if seq:
            _write_seq(f, all_batches(), to_crs, crs, translate, tally)
        else:
            _write_file(f, all_batches(), to_crs, crs, translate, tally)
    return tally


def _write_seq(f: IO[str], batches: Iterable[pa.RecordBatch], to_crs: Transformer, crs: str,
               translate: tuple[float, float, float], tally: Tally) -> None:  # fmt: skip
    f.write(json.dumps({**_header(crs, translate), "CityObjects": {}, "vertices": []}) + "\n")
    for batch in batches:
        written = []
        for row, geom in _rows(batch, to_crs):
            verts = _Vertices(translate)
            obj = city_object(row, geom, verts)
            if obj is None:
                continue
            oid = f"building-{row['fid']}"
            f.write(json.dumps({"type": "CityJSONFeature", "id": oid, "CityObjects": {oid: obj},
                                "vertices": verts.as_lists()}) + "\n")  # fmt: skip
            written.append(row["fid"])
        _count(tally, batch, written)


def _write_file(f: IO[str], batches: Iterable[pa.RecordBatch], to_crs: Transformer, crs: str,
                translate: tuple[float, float, float], tally: Tally) -> None:  # fmt: skip
    header = _header(crs, translate)
    f.write('{"type": "CityJSON", "version": "2.0", "transform": '
            + json.dumps(header["transform"]) + ', "CityObjects": {')  # fmt: skip
    verts = _Vertices(translate)
    sep = ""
    for batch in batches:
        written = []
        for row, geom in _rows(batch, to_crs):
            obj = city_object(row, geom, verts)
            verts.forget()
            if obj is None:
                continue
            oid = f"building-{row['fid']}"
            f.write(f"{sep}{json.dumps(oid)}: {json.dumps(obj)}")
            sep = ", "
            written.append(row["fid"])
        _count(tally, batch, written)
    f.write('}, "vertices": ')
    verts.write(f)
    meta = dict(header["metadata"])
    if verts.flat:
        meta["geographicalExtent"] = verts.bounds
    f.write(', "metadata": ' + json.dumps(meta) + "}")


def _count(tally: Tally, batch: pa.RecordBatch, written: list[int]) -> None:
    if written:
        keep = pa.compute.is_in(batch.column("fid"), pa.array(written, pa.int64()))
        tally.add(batch.filter(keep))
