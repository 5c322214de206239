"""Per-cell statistics and the data versions that key the tile cache."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from twin.db.models.base import Base, geom, geom_3857, gist, now_default


class CellStats(Base):
    """Aggregates per H3 cell and resolution. People counts here are raw: every reader that lacks
    the right to see them must go through suppression (counts below k hidden)."""

    __tablename__ = "cell_stats"
    __table_args__ = (
        sa.CheckConstraint("res BETWEEN 0 AND 15", name="res"),
        *gist("cell_stats", "geom", "geom_3857"),
    )

    res: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    cell: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    parent: Mapped[int | None] = mapped_column(sa.BigInteger, index=True)
    area_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_area.id", ondelete="SET NULL"),
        index=True,
        comment="the grid patch holding the cell centre, else the one overlapping it most",
    )
    population: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    population_by_age: Mapped[dict[str, Any]] = mapped_column(
        server_default=sa.text("'{}'::jsonb"), comment="residents per age band"
    )
    elderly: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    jobs: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    buildings: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    floor_area_m2: Mapped[float] = mapped_column(sa.Float, server_default="0")
    height_mean_m: Mapped[float | None] = mapped_column(sa.Float)
    height_max_m: Mapped[float | None] = mapped_column(sa.Float)
    enterprises: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    hazard_sites: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    hazard_sites_by_category: Mapped[dict[str, Any]] = mapped_column(
        server_default=sa.text("'{}'::jsonb")
    )
    events_open: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    events_open_by_type: Mapped[dict[str, Any]] = mapped_column(
        server_default=sa.text("'{}'::jsonb")
    )
    events_30d: Mapped[int] = mapped_column(
        sa.Integer, server_default="0", comment="events in the 30 days before the refresh"
    )
    events_30d_by_type: Mapped[dict[str, Any]] = mapped_column(
        server_default=sa.text("'{}'::jsonb")
    )
    road_length_m: Mapped[float] = mapped_column(
        sa.Float, server_default="0", comment="length of road links whose midpoint is in the cell"
    )
    land_use_mix: Mapped[dict[str, Any]] = mapped_column(
        server_default=sa.text("'{}'::jsonb"), comment="share of cell area per land-use class"
    )
    hidden: Mapped[list[str]] = mapped_column(
        ARRAY(sa.Text),
        server_default=sa.text("'{}'::text[]"),
        comment="people fields hidden from the public (primary and complementary suppression, "
        "twin.access.suppression.cell_hidden_fields)",
    )
    geom: Mapped[Any] = geom("POLYGON")
    geom_3857: Mapped[Any] = geom_3857("POLYGON")
    updated_at: Mapped[datetime] = now_default()


class AreaCounts(Base):
    """Buildings and residents per admin area that buildings carry (a grid patch), kept by the
    cell refresh (:func:`twin.city.cells.refresh_area_counts`) in the same transaction as the
    cell statistics, so that a cockpit sums a few thousand rows where it counted 12 M people.
    Raw counts: cockpits suppress them (:mod:`twin.reporting.cockpit`)."""

    __tablename__ = "area_counts"

    area_id: Mapped[int] = mapped_column(
        sa.ForeignKey("admin_area.id", ondelete="CASCADE"), primary_key=True
    )
    buildings: Mapped[int] = mapped_column(sa.Integer)
    residents: Mapped[int] = mapped_column(sa.Integer)
    updated_at: Mapped[datetime] = now_default()


class LayerVersion(Base):
    """A counter per served layer, bumped in the same transaction as any write to it, so tile
    cache keys that carry it can never serve a tile older than the committed data."""

    __tablename__ = "layer_version"

    layer: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    version: Mapped[int] = mapped_column(sa.BigInteger, server_default="1")
    updated_at: Mapped[datetime] = now_default()
