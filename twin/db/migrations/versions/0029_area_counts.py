"""area_counts: buildings and residents per grid patch, kept by the cell refresh, so that a
city cockpit sums patches instead of counting every resident (5 s at the large city)

Revision ID: 0029_area_counts
Revises: 0026_leftovers
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029_area_counts"
down_revision: str | None = "0026_leftovers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "area_counts",
        sa.Column("area_id", sa.BigInteger(), nullable=False),
        sa.Column("buildings", sa.Integer(), nullable=False),
        sa.Column("residents", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.ForeignKeyConstraint(["area_id"], ["twin.admin_area.id"], ondelete="CASCADE",
                                name=op.f("fk_area_counts_area_id_admin_area")),
        sa.PrimaryKeyConstraint("area_id", name=op.f("pk_area_counts")),
        schema="twin",
    )  # fmt: skip
    # An existing twin gets its counts now, as the next cell refresh would write them.
    op.execute(
        "INSERT INTO twin.area_counts (area_id, buildings, residents) "
        "SELECT b.area_id, count(*), coalesce(sum(r.n), 0) FROM twin.building b "
        "LEFT JOIN (SELECT home_building_id AS id, count(*) AS n FROM twin.person "
        "           WHERE home_building_id IS NOT NULL GROUP BY 1) r ON r.id = b.id "
        "WHERE b.area_id IS NOT NULL GROUP BY b.area_id"
    )


def downgrade() -> None:
    op.drop_table("area_counts", schema="twin")
