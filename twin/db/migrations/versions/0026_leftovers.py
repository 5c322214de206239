"""leftovers: sim_run.dismissed_at, set when an OGC API Processes job is dismissed
(``DELETE /jobs/{id}``): the job leaves /jobs, the run and its results stay in /api/simulations

Revision ID: 0026_leftovers
Revises: 0022_comment_paths
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026_leftovers"
down_revision: str | None = "0024_ensemble"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sim_run", sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=True),
                  schema="twin")  # fmt: skip


def downgrade() -> None:
    op.drop_column("sim_run", "dismissed_at", schema="twin")
