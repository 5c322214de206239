"""flood cell results: whether affected_people is hidden from the public

Revision ID: 0010_flood_people_hidden
Revises: 0009_synthetic_people
Create Date: 2026-12-03

A flood run's affected people per cell were suppressed cell by cell (below k), so a parent at
one resolution minus its shown children at the next gave a hidden count back. The run's store
now decides, with the one suppression model (``twin.suppression.suppress``) over every
resolution and the run's total, which cells hide ``affected_people``, and keeps that here.
Rows of earlier runs count as not hidden beyond primary suppression until re-run.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_flood_people_hidden"
down_revision: str | None = "0009_synthetic_people"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "flood_cell_result",
        sa.Column(
            "people_hidden", sa.Boolean(), nullable=False, server_default=sa.text("false"),
            comment="affected_people hidden from the public (primary and complementary "
            "suppression, twin.suppression)",
        ),
        schema="twin",
    )


def downgrade() -> None:
    op.drop_column("flood_cell_result", "people_hidden", schema="twin")
