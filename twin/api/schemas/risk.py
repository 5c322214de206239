"""Models of ``/api/layers`` and ``/api/risk``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class LayerInput(BaseModel):
    name: str = Field(description="the source query's column")
    title: str
    weight: float
    normalise: str = Field(description="linear, log, quantile or step")
    min: float
    max: float
    steps: list[float] = Field(description="step thresholds (normalise = step)")
    people: bool = Field(description="counts people: hidden below k from the public")


class Thresholds(BaseModel):
    """Score thresholds (0-100) of the levels above blue."""

    yellow: float
    orange: float
    red: float


class LevelColors(BaseModel):
    blue: str = Field(description="#rrggbb")
    yellow: str
    orange: str
    red: str


class LevelCounts(BaseModel):
    """Cells per level."""

    blue: int
    yellow: int
    orange: int
    red: int


class LayerStyle(BaseModel):
    opacity: float = Field(description="0 .. 1")
    colors: LevelColors


class RiskLayer(BaseModel):
    id: str = Field(description="layer id ('onemap': the combined one map)")
    title: str
    title_zh: str = Field(description="title in Chinese")
    family: str
    family_title: str
    family_title_zh: str
    description: str
    res: int = Field(description="the H3 resolution it is scored at")
    classification: str = Field(description="the data class it has (who may see it)")
    combine: bool = Field(description="takes part in the one map")
    inputs: list[LayerInput]
    levels: Thresholds
    style: LayerStyle
    tiles: str = Field(description="URL template of its vector tiles")
    cells: LevelCounts = Field(description="cells per level at the last computation")
    computed_at: datetime | None = Field(description="the last computation (null: never)")
    status: Literal["ok", "no data", "not computed"]


class LayerFileError(BaseModel):
    file: str = Field(description="the layer file's name")
    field: str | None = Field(description="the field at fault")
    error: str


class LayerCatalog(BaseModel):
    layers: list[RiskLayer]
    errors: list[LayerFileError] = Field(description="files that failed to load (left out)")


class RiskCell(BaseModel):
    h3: str = Field(description="the cell (H3 hex)")
    score: float | None = Field(description="0-100; null: it would reveal a people count below k")
    level: str = Field(description="blue, yellow, orange or red")
    components: dict[str, Any] = Field(
        description="keyed by the layer's inputs (value, norm, points), on the one map by layer "
        "(score, level, suppressed), at coarser resolutions cells per level and worst_child"
    )
    suppressed: bool = Field(description="people inputs and score hidden from the caller")


class RiskCells(BaseModel):
    layer: str
    title: str
    res: int = Field(description="H3 resolution")
    levels: Thresholds
    colors: LevelColors
    count: int
    cells: list[RiskCell] = Field(description="highest score first")
