"""city_meta: the city a database holds (name, centre, the metric CRS of its grids)

Revision ID: 0013_city_meta
Revises: 0012_scope_cells
Create Date: 2026-12-03

A real city loaded from public files lies anywhere on Earth, so the UTM zone used for areas,
lengths, the flood grid and the traffic zones cannot come from the default setting (the demo
city's). The first OSM ingest records the extent's centre and zone here; every later command
and the server read it unless TWIN_CITY_CRS or TWIN_CITY_CENTER say otherwise.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_city_meta"
down_revision: str | None = "0012_scope_cells"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "city_meta",
        sa.Column("id", sa.SmallInteger, server_default="1", nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("center_lon", sa.Float, nullable=False),
        sa.Column("center_lat", sa.Float, nullable=False),
        sa.Column("crs", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_city_meta")),
        sa.CheckConstraint("id = 1", name=op.f("ck_city_meta_one_row")),
        schema="twin",
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("city_meta", schema="twin")
