"""person: synthetic residents (from a population grid) flagged, with their source

Revision ID: 0009_synthetic_people
Revises: 0008
Create Date: 2026-12-03

`twin ingest population GRID.tif` writes residents disaggregated from a gridded population
count (WorldPop, GHS-POP). They stand for real people, so every count and the suppression
rules treat them as residents; the flag and the source say where they came from, so that a
later load of person-level records can replace them and a report can say the people are
modelled. Existing rows are real records: synthetic is false, source empty.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_synthetic_people"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "person",
        sa.Column(
            "synthetic", sa.Boolean, nullable=False, server_default=sa.false(),
            comment="true: modelled from a population grid (twin ingest population)",
        ),
        schema="twin",
    )
    op.add_column(
        "person",
        sa.Column(
            "source", sa.Text, nullable=True,
            comment="where the row came from, e.g. population:worldpop.tif:2020",
        ),
        schema="twin",
    )


def downgrade() -> None:
    op.drop_column("person", "source", schema="twin")
    op.drop_column("person", "synthetic", schema="twin")
