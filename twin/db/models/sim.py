"""Simulation runs and their results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from twin.db.models.base import Base, check_in, now_default

SIM_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
LINK_FLOOD_STATES = ("passable", "slowed", "closed")


class SimRun(Base):
    __tablename__ = "sim_run"
    __table_args__ = (
        check_in("status", SIM_STATUSES, "status"),
        sa.CheckConstraint("progress BETWEEN 0 AND 1", name="progress"),
        sa.Index("ix_sim_run_kind_created", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.Text)
    params: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(sa.Text, server_default="queued")
    progress: Mapped[float] = mapped_column(sa.Float, server_default="0")
    baseline_run_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("sim_run.id", ondelete="SET NULL")
    )
    created_by: Mapped[int | None] = mapped_column(
        sa.ForeignKey("app_user.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = now_default()
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    timings: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    summary: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    error: Mapped[str | None] = mapped_column(sa.Text)
    # Set when the run's OGC API Processes job is dismissed (DELETE /jobs/{id}): the job
    # leaves /jobs; the run and its results stay.
    dismissed_at: Mapped[datetime | None]


class FloodCellResult(Base):
    """Per cell of a flood run: max depth (m), time of max (s), flooded share, time to 15 cm (s)."""

    __tablename__ = "flood_cell_result"

    run_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sim_run.id", ondelete="CASCADE"), primary_key=True
    )
    res: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    cell: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    max_depth_m: Mapped[float] = mapped_column(sa.Float)
    mean_max_depth_m: Mapped[float | None] = mapped_column(sa.Float)
    time_of_max_s: Mapped[float | None] = mapped_column(sa.Float)
    flooded_share: Mapped[float | None] = mapped_column(sa.Float)
    time_to_15cm_s: Mapped[float | None] = mapped_column(sa.Float)
    max_hazard: Mapped[float | None] = mapped_column(sa.Float)
    affected_buildings: Mapped[int | None] = mapped_column(sa.Integer)
    affected_people: Mapped[int | None] = mapped_column(
        sa.Integer,
        comment="residents of affected buildings; sensitive: suppressed when served",
    )
    people_hidden: Mapped[bool] = mapped_column(
        sa.Boolean,
        server_default=sa.text("false"),
        comment="affected_people hidden from the public (primary and complementary "
        "suppression, twin.suppression)",
    )


class FloodLinkResult(Base):
    """Road links reached by water in a flood run: max depth (m) and passability."""

    __tablename__ = "flood_link_result"
    __table_args__ = (check_in("state", LINK_FLOOD_STATES, "state"),)

    run_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sim_run.id", ondelete="CASCADE"), primary_key=True
    )
    link_id: Mapped[int] = mapped_column(
        sa.ForeignKey("road_link.id", ondelete="CASCADE"), primary_key=True
    )
    max_depth_m: Mapped[float] = mapped_column(sa.Float)
    state: Mapped[str] = mapped_column(sa.Text)


class FloodBuildingResult(Base):
    """Buildings reached by water: max depth at the footprint (m)."""

    __tablename__ = "flood_building_result"

    run_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sim_run.id", ondelete="CASCADE"), primary_key=True
    )
    building_id: Mapped[int] = mapped_column(
        sa.ForeignKey("building.id", ondelete="CASCADE"), primary_key=True
    )
    max_depth_m: Mapped[float] = mapped_column(sa.Float)


P15_COMMENT = "share of the ensemble's members whose max depth here is > 0.15 m"
P30_COMMENT = "share of the ensemble's members whose max depth here is > 0.30 m"
MEAN_MAX_COMMENT = "mean over the members of the max depth here (m)"


class FloodEnsembleCellResult(Base):
    """Per cell of a storm ensemble (a run of kind ``flood_ensemble``): exceedance probabilities
    of the cell's max depth (over its land pixels, as in ``flood_cell_result``)."""

    __tablename__ = "flood_ensemble_cell_result"

    run_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sim_run.id", ondelete="CASCADE"), primary_key=True
    )
    res: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    cell: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    p_over_15cm: Mapped[float] = mapped_column(sa.Float, comment=P15_COMMENT)
    p_over_30cm: Mapped[float] = mapped_column(sa.Float, comment=P30_COMMENT)
    mean_max_depth_m: Mapped[float] = mapped_column(sa.Float, comment=MEAN_MAX_COMMENT)


class FloodEnsembleLinkResult(Base):
    """Road links reached (>= 5 cm) by any member of a storm ensemble: exceedance
    probabilities of the max depth along the link."""

    __tablename__ = "flood_ensemble_link_result"

    run_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sim_run.id", ondelete="CASCADE"), primary_key=True
    )
    link_id: Mapped[int] = mapped_column(
        sa.ForeignKey("road_link.id", ondelete="CASCADE"), primary_key=True
    )
    p_over_15cm: Mapped[float] = mapped_column(sa.Float, comment=P15_COMMENT)
    p_over_30cm: Mapped[float] = mapped_column(sa.Float, comment=P30_COMMENT)
    mean_max_depth_m: Mapped[float] = mapped_column(sa.Float, comment=MEAN_MAX_COMMENT)


class TrafficLinkResult(Base):
    """Per link of a traffic run: flow (veh/h), time (min), v/c and travel-time index."""

    __tablename__ = "traffic_link_result"

    run_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sim_run.id", ondelete="CASCADE"), primary_key=True
    )
    link_id: Mapped[int] = mapped_column(
        sa.ForeignKey("road_link.id", ondelete="CASCADE"), primary_key=True
    )
    flow_vph: Mapped[float] = mapped_column(sa.Float)
    time_min: Mapped[float] = mapped_column(sa.Float)
    vc_ratio: Mapped[float] = mapped_column(sa.Float)
    tti: Mapped[float] = mapped_column(sa.Float, comment="congested / free-flow time")
    closed: Mapped[bool] = mapped_column(server_default=sa.false())


class TrafficCellResult(Base):
    """Per cell of a traffic run: vehicle-km travelled and the VKT-weighted travel-time index."""

    __tablename__ = "traffic_cell_result"

    run_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sim_run.id", ondelete="CASCADE"), primary_key=True
    )
    res: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    cell: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    vkt: Mapped[float] = mapped_column(sa.Float)
    tti: Mapped[float] = mapped_column(sa.Float)
