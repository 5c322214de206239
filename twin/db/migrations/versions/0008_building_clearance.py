"""building: minimum clearance, so that tiles can put small footprints in whole

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21

Building tiles move footprints to tile coordinates and snap them to the grid instead of
clipping them with ST_AsMVTGeom (most of a building tile's cost). Snapping moves a vertex by
at most half a grid diagonal, so a footprint whose minimum clearance (the least vertex move
that can make it invalid) exceeds the diagonal stays valid; slivers and spikes below it still
go through ST_AsMVTGeom. The clearance is a stored generated column: ingest sets it for free.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "building",
        sa.Column(
            "clearance_m", sa.Float,
            sa.Computed("ST_MinimumClearance(ST_Transform(geom, 3857))", persisted=True),
            comment="minimum clearance in EPSG:3857 metres: tiles put a footprint in whole "
            "when snapping to the tile grid cannot make it invalid (twin.tiles.catalog)",
        ),
        schema="twin",
    )


def downgrade() -> None:
    op.drop_column("building", "clearance_m", schema="twin")
