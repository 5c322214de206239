"""flood cell results: affected buildings and people

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21

The risk map and the cockpits need, per cell and flood run, how many buildings stood in water
and how many people live in them (served suppressed).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "flood_cell_result",
        sa.Column("affected_buildings", sa.Integer(), nullable=True),
        schema="twin",
    )
    op.add_column(
        "flood_cell_result",
        sa.Column(
            "affected_people", sa.Integer(), nullable=True,
            comment="residents of affected buildings; sensitive: suppressed when served",
        ),
        schema="twin",
    )


def downgrade() -> None:
    op.drop_column("flood_cell_result", "affected_people", schema="twin")
    op.drop_column("flood_cell_result", "affected_buildings", schema="twin")
