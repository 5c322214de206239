"""The one-map layer catalog: one TOML file per risk layer in ``layers/``.

A layer file declares what the layer shows, the SQL that yields its inputs per H3 cell, how each
input is normalised and weighted into a 0-100 score, the score thresholds of the four-colour
levels, its map style and the lowest role that may see it. Adding a layer is adding a file: the
catalog is read from the directory whenever it changes, so neither code nor a restart is needed.

Errors name the file and the field, and a broken file never half-loads: :func:`load_catalog`
returns the good layers and the errors side by side, and `twin risk compute` refuses to run
while any file is broken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.access.classification import LEVELS as CLASSES
from twin.risk.specfile import SpecFileError, read_toml, require

FAMILIES = {
    "city_lifelines": ("City lifelines", "城市生命线"),
    "public_safety": ("Public safety", "公共安全"),
    "production_safety": ("Production safety", "生产安全"),
    "natural_hazards": ("Natural hazards", "自然灾害"),
}
NORMALISERS = ("linear", "log", "quantile", "step")
LEVELS = ("blue", "yellow", "orange", "red")
DEFAULT_COLORS = {"blue": "#3b82f6", "yellow": "#facc15", "orange": "#f97316", "red": "#dc2626"}
ONEMAP = "onemap"  # the combined index; reserved as a layer id
# Parameters a source query may use (bound by the compute step, never interpolated).
# nowcast_step: the latest nowcast step when it is newer than the latest flood run, else NULL
# (twin.db.runs.nowcast_step_id); a layer reading it is fed by the nowcast (twin.risk.nowfeed).
# ensemble_run: the latest storm ensemble (a run of kind flood_ensemble, twin.runs.ensemble).
SOURCE_PARAMS = ("res", "as_of", "flood_run", "traffic_run", "nowcast_step", "ensemble_run")

_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_PARAM = re.compile(r"%\((\w+)\)s")


class CatalogError(SpecFileError):
    """A layer file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Input:
    """One scoring input: a column of the source query and how it becomes 0..1."""

    name: str
    weight: float
    normalise: str = "linear"
    min: float = 0.0
    max: float = 1.0
    steps: tuple[float, ...] = ()
    people: bool = False  # counts people: hidden below k from those without the right
    title: str = ""


@dataclass(frozen=True)
class Layer:
    id: str
    title: str
    title_zh: str
    family: str
    sql: str
    inputs: tuple[Input, ...]
    levels: dict[str, float]  # yellow, orange, red thresholds on the 0-100 score
    res: int = 9
    classification: str = "general"  # who may read it (twin.access.classification)
    combine: bool = True
    description: str = ""
    style: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def colors(self) -> dict[str, str]:
        return {**DEFAULT_COLORS, **self.style.get("colors", {})}

    @property
    def tile_id(self) -> str:
        return f"risk_{self.id}"

    def describe(self) -> dict[str, Any]:
        """The layer as ``GET /api/layers`` shows it (the SQL stays on the server)."""
        return {
            "id": self.id,
            "title": self.title,
            "title_zh": self.title_zh,
            "family": self.family,
            "family_title": FAMILIES[self.family][0],
            "family_title_zh": FAMILIES[self.family][1],
            "description": self.description,
            "res": self.res,
            "classification": self.classification,
            "combine": self.combine,
            "inputs": [
                {
                    "name": i.name,
                    "title": i.title,
                    "weight": i.weight,
                    "normalise": i.normalise,
                    "min": i.min,
                    "max": i.max,
                    "steps": list(i.steps),
                    "people": i.people,
                }
                for i in self.inputs
            ],
            "levels": self.levels,
            "style": {"opacity": self.style.get("opacity", 0.6), "colors": self.colors},
            "tiles": f"/tiles/{self.tile_id}/{{z}}/{{x}}/{{y}}.mvt",
        }


def onemap_layer(layers: list[Layer]) -> Layer:
    """The combined index: per cell the worst level and highest score over the public layers
    marked ``combine``. Only general layers take part, so the one map stays public."""
    parts = [lyr for lyr in layers if lyr.combine and lyr.classification == "general"]
    return Layer(
        id=ONEMAP, title="Risk one map", title_zh="风险一张图", family="public_safety", sql="",
        inputs=tuple(Input(name=lyr.id, weight=1.0, title=lyr.title) for lyr in parts),
        levels={"yellow": 25.0, "orange": 50.0, "red": 75.0},
        description="Highest score and worst level over the public layers, per cell.",
    )  # fmt: skip


# ---------------------------------------------------------------------------------- reading
def _get(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    return require(doc, key, kind, path, CatalogError)


def _number(doc: dict[str, Any], key: str, path: Path, where: str, default: float) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CatalogError(path, f"{where}.{key}", f"expected a number, got {value!r}")
    return float(value)


def _input(doc: Any, path: Path, k: int) -> Input:
    where = f"inputs[{k}]"
    if not isinstance(doc, dict):
        raise CatalogError(path, where, "expected a table")
    name = doc.get("name")
    if not isinstance(name, str) or not _ID.match(name):
        raise CatalogError(path, f"{where}.name", f"expected a lower_snake_case name, got {name!r}")
    norm = doc.get("normalise", "linear")
    if norm not in NORMALISERS:
        raise CatalogError(path, f"{where}.normalise", f"one of {NORMALISERS}, got {norm!r}")
    weight = _number(doc, "weight", path, where, 1.0)
    if weight <= 0:
        raise CatalogError(path, f"{where}.weight", f"must be > 0, got {weight}")
    lo = _number(doc, "min", path, where, 0.0)
    hi = _number(doc, "max", path, where, 1.0)
    if norm in ("linear", "log") and not hi > lo:
        raise CatalogError(path, f"{where}.max", f"must exceed min ({lo}), got {hi}")
    steps_raw = doc.get("steps", [])
    if norm == "step" and (
        not isinstance(steps_raw, list)
        or not steps_raw
        or not all(isinstance(s, int | float) and not isinstance(s, bool) for s in steps_raw)
        or sorted(steps_raw) != steps_raw
    ):
        raise CatalogError(path, f"{where}.steps", "expected ascending numbers")
    people = doc.get("people", False)
    if not isinstance(people, bool):
        raise CatalogError(path, f"{where}.people", f"expected true or false, got {people!r}")
    known = {"name", "normalise", "weight", "min", "max", "steps", "people", "title"}
    extra = sorted(set(doc) - known)
    if extra:
        raise CatalogError(path, f"{where}.{extra[0]}", f"unknown field; known: {sorted(known)}")
    return Input(
        name=name, weight=weight, normalise=norm, min=lo, max=hi,
        steps=tuple(float(s) for s in steps_raw), people=people, title=str(doc.get("title", "")),
    )  # fmt: skip


def _levels(doc: Any, path: Path) -> dict[str, float]:
    if not isinstance(doc, dict):
        raise CatalogError(path, "levels", "expected a table with yellow, orange and red")
    out = {}
    for key in ("yellow", "orange", "red"):
        out[key] = _number(doc, key, path, "levels", float("nan"))
        if out[key] != out[key]:
            raise CatalogError(path, f"levels.{key}", "missing")
    if not 0 < out["yellow"] < out["orange"] < out["red"] <= 100:
        raise CatalogError(path, "levels", f"need 0 < yellow < orange < red <= 100, got {out}")
    return out


def _style(doc: Any, path: Path) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise CatalogError(path, "style", "expected a table")
    colors = doc.get("colors", {})
    if not isinstance(colors, dict):
        raise CatalogError(path, "style.colors", "expected a table of level = '#rrggbb'")
    for level, color in colors.items():
        if level not in LEVELS:
            raise CatalogError(path, f"style.colors.{level}", f"levels are {LEVELS}")
        if not isinstance(color, str) or not _COLOR.match(color):
            raise CatalogError(path, f"style.colors.{level}", f"expected '#rrggbb', got {color!r}")
    opacity = _number(doc, "opacity", path, "style", 0.6)
    if not 0 <= opacity <= 1:
        raise CatalogError(path, "style.opacity", f"must be 0..1, got {opacity}")
    return {"colors": dict(colors), "opacity": opacity}


LAYER_FIELDS = {"id", "title", "title_zh", "family", "res", "classification", "combine",
                "description", "source", "inputs", "levels", "style"}  # fmt: skip


def read_layer(path: Path, *, resolutions: list[int] | None = None) -> Layer:
    """Read and check one layer file."""
    doc = read_toml(path, CatalogError)
    if "visible_to" in doc:  # the field's old name: refuse it rather than publish the layer
        raise CatalogError(path, "visible_to", "replaced by classification = "
                           '"general" | "important" | "core" (see layers/README.md)')  # fmt: skip
    extra = sorted(set(doc) - LAYER_FIELDS)
    if extra:
        raise CatalogError(path, extra[0], f"unknown field; known: {sorted(LAYER_FIELDS)}")
    layer_id = _get(doc, "id", str, path)
    if not _ID.match(layer_id):
        raise CatalogError(path, "id", f"expected lower_snake_case (<= 40 chars), got {layer_id!r}")
    if layer_id != path.stem:
        raise CatalogError(path, "id", f"must match the file name ({path.stem!r})")
    if layer_id == ONEMAP:
        raise CatalogError(path, "id", f"{ONEMAP!r} is the combined index, reserved")
    family = _get(doc, "family", str, path)
    if family not in FAMILIES:
        raise CatalogError(path, "family", f"one of {tuple(FAMILIES)}, got {family!r}")
    res = _get(doc, "res", int, path) if "res" in doc else 9
    if resolutions is not None and res not in resolutions:
        raise CatalogError(path, "res", f"must be one of the twin's resolutions {resolutions}")
    classification = doc.get("classification", "general")
    if classification not in CLASSES:
        raise CatalogError(path, "classification", f"one of {CLASSES}, got {classification!r}")
    source = _get(doc, "source", dict, path)
    sql = _get(source, "sql", str, path).strip()
    if not re.match(r"(?is)^(select|with)\b", sql):
        raise CatalogError(path, "source.sql", "must be one SELECT (or WITH ... SELECT) query")
    unknown = sorted(set(_PARAM.findall(sql)) - set(SOURCE_PARAMS))
    if unknown:
        raise CatalogError(path, "source.sql", f"unknown parameter %({unknown[0]})s; "
                           f"known: {', '.join(SOURCE_PARAMS)}")  # fmt: skip
    raw_inputs = _get(doc, "inputs", list, path)
    if not raw_inputs:
        raise CatalogError(path, "inputs", "at least one input")
    inputs = tuple(_input(d, path, k) for k, d in enumerate(raw_inputs))
    names = [i.name for i in inputs]
    if len(set(names)) != len(names) or "cell" in names:
        raise CatalogError(path, "inputs", f"names must be unique and not 'cell': {names}")
    combine = doc.get("combine", True)
    if not isinstance(combine, bool):
        raise CatalogError(path, "combine", f"expected true or false, got {combine!r}")
    return Layer(
        id=layer_id,
        title=_get(doc, "title", str, path),
        title_zh=_get(doc, "title_zh", str, path),
        family=family,
        sql=sql,
        inputs=inputs,
        levels=_levels(doc.get("levels"), path),
        res=res,
        classification=classification,
        combine=combine,
        description=str(doc.get("description", "")).strip(),
        style=_style(doc.get("style", {}), path),
        path=str(path),
    )


@dataclass(frozen=True)
class Catalog:
    layers: tuple[Layer, ...]
    errors: tuple[CatalogError, ...]

    def get(self, layer_id: str) -> Layer | None:
        if layer_id == ONEMAP:
            return onemap_layer(list(self.layers))
        return next((lyr for lyr in self.layers if lyr.id == layer_id), None)

    def all_layers(self) -> list[Layer]:
        """The file layers and the combined one map."""
        return [*self.layers, onemap_layer(list(self.layers))]


_CACHE: dict[tuple[str, tuple[int, ...] | None], tuple[tuple[Any, ...], Catalog]] = {}


def load_catalog(directory: Path, *, resolutions: list[int] | None = None) -> Catalog:
    """Every ``*.toml`` layer file of ``directory`` (sorted by name), re-read when any changes."""
    files = sorted(directory.glob("*.toml")) if directory.is_dir() else []
    stamp = tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    key = (str(directory), tuple(resolutions) if resolutions is not None else None)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    layers: list[Layer] = []
    errors: list[CatalogError] = []
    for f in files:
        try:
            layers.append(read_layer(f, resolutions=resolutions))
        except CatalogError as exc:
            errors.append(exc)
    catalog = Catalog(tuple(layers), tuple(errors))
    _CACHE[key] = (stamp, catalog)
    return catalog
