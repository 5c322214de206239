"""The rolling flood nowcast: its carried state, its steps and what each step stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from twin.db.models.base import Base, check_in, now_default
from twin.db.models.sim import LINK_FLOOD_STATES


class Nowcast(Base):
    """One rolling nowcast: the grid it runs on and the flood state it carries (an ``.npz``
    blob of :class:`twin.sim.flood_state.FloodState`), as of its latest step."""

    __tablename__ = "nowcast"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    created_at: Mapped[datetime] = now_default()
    origin: Mapped[datetime] = mapped_column(comment="time 0 of the model clock")
    as_of: Mapped[datetime] = mapped_column(comment="time of the carried state")
    grid: Mapped[dict[str, Any]] = mapped_column(comment="rows, cols, cell_m, crs, transform")
    params: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    state: Mapped[bytes] = mapped_column(sa.LargeBinary, comment="FloodState as .npz")
    steps: Mapped[int] = mapped_column(sa.Integer, server_default="0")


class NowcastStep(Base):
    """One step of a nowcast: its window, the gauges used, the rain and the depths."""

    __tablename__ = "nowcast_step"
    __table_args__ = (sa.UniqueConstraint("nowcast_id", "as_of"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    nowcast_id: Mapped[int] = mapped_column(
        sa.ForeignKey("nowcast.id", ondelete="CASCADE"), index=True
    )
    as_of: Mapped[datetime] = mapped_column(index=True, comment="end of the window")
    window_s: Mapped[float] = mapped_column(sa.Float)
    horizon_s: Mapped[float] = mapped_column(sa.Float)
    gauges: Mapped[dict[str, Any]] = mapped_column(
        comment="used: code -> mm/h over the window; stale: codes; forecast: code -> mm/h"
    )
    rain_mean_mm_h: Mapped[float] = mapped_column(sa.Float)
    rain_max_mm_h: Mapped[float] = mapped_column(sa.Float)
    forecast_rain_mean_mm_h: Mapped[float] = mapped_column(sa.Float)
    max_depth_now_m: Mapped[float] = mapped_column(sa.Float)
    max_depth_horizon_m: Mapped[float] = mapped_column(sa.Float)
    summary: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    created_at: Mapped[datetime] = now_default()


class NowcastCell(Base):
    """Per cell of a step (wet cells only): the deepest land pixel now and at the horizon (m),
    and the deepest over the horizon."""

    __tablename__ = "nowcast_cell"

    step_id: Mapped[int] = mapped_column(
        sa.ForeignKey("nowcast_step.id", ondelete="CASCADE"), primary_key=True
    )
    res: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    cell: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    depth_now_m: Mapped[float] = mapped_column(sa.Float)
    depth_horizon_m: Mapped[float] = mapped_column(sa.Float)
    max_depth_horizon_m: Mapped[float] = mapped_column(sa.Float)


class NowcastLink(Base):
    """Road links reached by water now or at the horizon: depth along the link and state."""

    __tablename__ = "nowcast_link"
    __table_args__ = (
        check_in("state_now", LINK_FLOOD_STATES, "state_now"),
        check_in("state_horizon", LINK_FLOOD_STATES, "state_horizon"),
    )

    step_id: Mapped[int] = mapped_column(
        sa.ForeignKey("nowcast_step.id", ondelete="CASCADE"), primary_key=True
    )
    link_id: Mapped[int] = mapped_column(
        sa.ForeignKey("road_link.id", ondelete="CASCADE"), primary_key=True
    )
    depth_now_m: Mapped[float] = mapped_column(sa.Float)
    depth_horizon_m: Mapped[float] = mapped_column(sa.Float)
    state_now: Mapped[str] = mapped_column(sa.Text)
    state_horizon: Mapped[str] = mapped_column(sa.Text)


class NowcastSkill(Base):
    """A water-level sensor's latest reading of the window against the model at its pixel."""

    __tablename__ = "nowcast_skill"

    step_id: Mapped[int] = mapped_column(
        sa.ForeignKey("nowcast_step.id", ondelete="CASCADE"), primary_key=True
    )
    sensor_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sensor.id", ondelete="CASCADE"), primary_key=True
    )
    observed_at: Mapped[datetime]
    observed_m: Mapped[float] = mapped_column(sa.Float)
    modelled_depth_m: Mapped[float] = mapped_column(sa.Float)
    modelled_level_m: Mapped[float] = mapped_column(sa.Float, comment="ground + depth")
    difference_m: Mapped[float] = mapped_column(
        sa.Float, comment="observed - modelled (depth, or level for a datum sensor)"
    )
