"""The road network: a directed graph (one row per direction of travel)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from twin.db.models.base import Base, cell_column, check_in, geom, geom_3857, gist

ROAD_CLASSES = (
    "motorway",
    "expressway",
    "trunk",
    "primary",
    "secondary",
    "tertiary",
    "residential",
    "service",
    "connector",
)


class RoadNode(Base):
    __tablename__ = "road_node"
    __table_args__ = (*gist("road_node", "geom", "geom_3857"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    source_id: Mapped[str | None] = mapped_column(sa.Text)
    cell: Mapped[int | None] = cell_column()
    geom: Mapped[Any] = geom("POINT")
    geom_3857: Mapped[Any] = geom_3857("POINT")


class RoadLink(Base):
    """A directed link; capacity (veh/h), free speed (km/h) and length (m) feed BPR costs."""

    __tablename__ = "road_link"
    __table_args__ = (
        check_in("road_class", ROAD_CLASSES, "road_class"),
        sa.CheckConstraint("lanes > 0", name="lanes"),
        sa.CheckConstraint("free_speed_kmh > 0", name="free_speed"),
        sa.CheckConstraint("capacity_vph > 0", name="capacity"),
        sa.CheckConstraint("length_m >= 0", name="length"),
        sa.CheckConstraint("from_node <> to_node", name="no_self_loop"),
        sa.Index("ix_road_link_from_to", "from_node", "to_node"),
        *gist("road_link", "geom", "geom_3857"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    from_node: Mapped[int] = mapped_column(sa.ForeignKey("road_node.id", ondelete="CASCADE"))
    to_node: Mapped[int] = mapped_column(
        sa.ForeignKey("road_node.id", ondelete="CASCADE"), index=True
    )
    road_class: Mapped[str] = mapped_column(sa.Text)
    name: Mapped[str | None] = mapped_column(sa.Text)
    lanes: Mapped[int] = mapped_column(sa.SmallInteger)
    free_speed_kmh: Mapped[float] = mapped_column(sa.Float)
    capacity_vph: Mapped[float] = mapped_column(sa.Float)
    length_m: Mapped[float] = mapped_column(sa.Float)
    bridge: Mapped[bool] = mapped_column(server_default=sa.false())
    tunnel: Mapped[bool] = mapped_column(server_default=sa.false())
    source_id: Mapped[str | None] = mapped_column(sa.Text)
    cell: Mapped[int | None] = cell_column()  # of the link's midpoint
    geom: Mapped[Any] = geom("LINESTRING")
    geom_3857: Mapped[Any] = geom_3857("LINESTRING")
    attrs: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
