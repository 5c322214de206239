"""nowcast: the rolling flood nowcast's carried state, steps, cells, roads and sensor skill

Revision ID: 0018_nowcast
Revises: 0017_observation_partitions
Create Date: 2026-12-04

``twin nowcast step`` advances a flood state every few minutes with the rain the gauges saw
and looks an hour ahead: ``nowcast`` keeps the state (an .npz blob) between steps,
``nowcast_step`` one row per step (window, gauges used, rain, depths), ``nowcast_cell`` and
``nowcast_link`` the depth now and at the horizon per cell and per road link, and
``nowcast_skill`` water-level readings against the model.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018_nowcast"
down_revision: str | None = "0017_observation_partitions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "twin"
TZ = sa.DateTime(timezone=True)


def _jsonb(name: str, *, default: bool = False, comment: str | None = None) -> sa.Column:
    return sa.Column(name, postgresql.JSONB(astext_type=sa.Text()), nullable=False,
                     server_default=sa.text("'{}'::jsonb") if default else None,
                     comment=comment)  # fmt: skip


def _float(name: str, comment: str | None = None) -> sa.Column:
    return sa.Column(name, sa.Float(), nullable=False, comment=comment)


def _step_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["step_id"], ["twin.nowcast_step.id"], ondelete="CASCADE",
                                   name=f"fk_{table}_step_id_nowcast_step")  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "nowcast",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.Column("origin", TZ, nullable=False, comment="time 0 of the model clock"),
        sa.Column("as_of", TZ, nullable=False, comment="time of the carried state"),
        _jsonb("grid", comment="rows, cols, cell_m, crs, transform"),
        _jsonb("params", default=True),
        sa.Column("state", sa.LargeBinary(), nullable=False, comment="FloodState as .npz"),
        sa.Column("steps", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nowcast"),
        schema=S,
    )  # fmt: skip
    op.create_table(
        "nowcast_step",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("nowcast_id", sa.BigInteger(), nullable=False),
        sa.Column("as_of", TZ, nullable=False, comment="end of the window"),
        _float("window_s"), _float("horizon_s"),
        _jsonb("gauges", comment="used: code -> mm/h over the window; stale: codes;"
                                 " forecast: code -> mm/h"),
        _float("rain_mean_mm_h"), _float("rain_max_mm_h"), _float("forecast_rain_mean_mm_h"),
        _float("max_depth_now_m"), _float("max_depth_horizon_m"),
        _jsonb("summary", default=True),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["nowcast_id"], ["twin.nowcast.id"], ondelete="CASCADE",
                                name="fk_nowcast_step_nowcast_id_nowcast"),
        sa.PrimaryKeyConstraint("id", name="pk_nowcast_step"),
        sa.UniqueConstraint("nowcast_id", "as_of", name="uq_nowcast_step_nowcast_id_as_of"),
        schema=S,
    )  # fmt: skip
    for col in ("nowcast_id", "as_of"):
        op.create_index(f"ix_nowcast_step_{col}", "nowcast_step", [col], schema=S)
    op.create_table(
        "nowcast_cell",
        sa.Column("step_id", sa.BigInteger(), nullable=False),
        sa.Column("res", sa.SmallInteger(), nullable=False),
        sa.Column("cell", sa.BigInteger(), nullable=False),
        _float("depth_now_m"), _float("depth_horizon_m"), _float("max_depth_horizon_m"),
        _step_fk("nowcast_cell"),
        sa.PrimaryKeyConstraint("step_id", "res", "cell", name="pk_nowcast_cell"),
        schema=S,
    )  # fmt: skip
    op.create_table(
        "nowcast_link",
        sa.Column("step_id", sa.BigInteger(), nullable=False),
        sa.Column("link_id", sa.BigInteger(), nullable=False),
        _float("depth_now_m"), _float("depth_horizon_m"),
        sa.Column("state_now", sa.Text(), nullable=False),
        sa.Column("state_horizon", sa.Text(), nullable=False),
        sa.CheckConstraint("state_now IN ('passable', 'slowed', 'closed')",
                           name="ck_nowcast_link_state_now"),
        sa.CheckConstraint("state_horizon IN ('passable', 'slowed', 'closed')",
                           name="ck_nowcast_link_state_horizon"),
        _step_fk("nowcast_link"),
        sa.ForeignKeyConstraint(["link_id"], ["twin.road_link.id"], ondelete="CASCADE",
                                name="fk_nowcast_link_link_id_road_link"),
        sa.PrimaryKeyConstraint("step_id", "link_id", name="pk_nowcast_link"),
        schema=S,
    )  # fmt: skip
    op.create_table(
        "nowcast_skill",
        sa.Column("step_id", sa.BigInteger(), nullable=False),
        sa.Column("sensor_id", sa.BigInteger(), nullable=False),
        sa.Column("observed_at", TZ, nullable=False),
        _float("observed_m"), _float("modelled_depth_m"),
        _float("modelled_level_m", "ground + depth"),
        _float("difference_m", "observed - modelled (depth, or level for a datum sensor)"),
        _step_fk("nowcast_skill"),
        sa.ForeignKeyConstraint(["sensor_id"], ["twin.sensor.id"], ondelete="CASCADE",
                                name="fk_nowcast_skill_sensor_id_sensor"),
        sa.PrimaryKeyConstraint("step_id", "sensor_id", name="pk_nowcast_skill"),
        schema=S,
    )  # fmt: skip


def downgrade() -> None:
    for table in ("nowcast_skill", "nowcast_link", "nowcast_cell", "nowcast_step", "nowcast"):
        op.drop_table(table, schema=S)
