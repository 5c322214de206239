"""ensemble: exceedance probabilities of a storm ensemble per cell and per road link

Revision ID: 0024_ensemble
Revises: 0022_comment_paths
Create Date: 2026-12-06

``twin simulate flood --ensemble SPEC.yaml`` runs many storms (return periods x durations x
rain perturbations) on a Dask cluster and stores, for a run of kind ``flood_ensemble``, the
share of members whose max depth exceeds 15 and 30 cm: ``flood_ensemble_cell_result`` per H3
cell at every kept resolution, ``flood_ensemble_link_result`` per road link reached.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_ensemble"
down_revision: str | None = "0023_partitions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "twin"
P15 = "share of the ensemble's members whose max depth here is > 0.15 m"
P30 = "share of the ensemble's members whose max depth here is > 0.30 m"
MEAN_MAX = "mean over the members of the max depth here (m)"


def _values() -> list[sa.Column]:
    return [
        sa.Column("p_over_15cm", sa.Float(), nullable=False, comment=P15),
        sa.Column("p_over_30cm", sa.Float(), nullable=False, comment=P30),
        sa.Column("mean_max_depth_m", sa.Float(), nullable=False, comment=MEAN_MAX),
    ]


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["run_id"], ["twin.sim_run.id"], ondelete="CASCADE",
                                   name=f"fk_{table}_run_id_sim_run")  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "flood_ensemble_cell_result",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("res", sa.SmallInteger(), nullable=False),
        sa.Column("cell", sa.BigInteger(), nullable=False),
        *_values(),
        _run_fk("flood_ensemble_cell_result"),
        sa.PrimaryKeyConstraint("run_id", "res", "cell", name="pk_flood_ensemble_cell_result"),
        schema=S,
    )  # fmt: skip
    op.create_table(
        "flood_ensemble_link_result",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("link_id", sa.BigInteger(), nullable=False),
        *_values(),
        _run_fk("flood_ensemble_link_result"),
        sa.ForeignKeyConstraint(["link_id"], ["twin.road_link.id"], ondelete="CASCADE",
                                name="fk_flood_ensemble_link_result_link_id_road_link"),
        sa.PrimaryKeyConstraint("run_id", "link_id", name="pk_flood_ensemble_link_result"),
        schema=S,
    )  # fmt: skip


def downgrade() -> None:
    for table in ("flood_ensemble_link_result", "flood_ensemble_cell_result"):
        op.drop_table(table, schema=S)
