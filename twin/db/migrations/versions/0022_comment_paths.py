"""comment paths: column comments name the modules where the code now lives (issue 23 layout)

Revision ID: 0022_comment_paths
Revises: 0019_change_feed
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_comment_paths"
down_revision: str | None = "0019_change_feed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = ("people fields hidden from the public (primary and complementary suppression, "
       "twin.privacy.cell_hidden_fields)")  # fmt: skip
NEW = ("people fields hidden from the public (primary and complementary suppression, "
       "twin.access.suppression.cell_hidden_fields)")  # fmt: skip


def _comment(text: str, old: str) -> None:
    op.alter_column("cell_stats", "hidden", existing_type=sa.ARRAY(sa.Text), comment=text,
                    existing_comment=old, schema="twin")  # fmt: skip


def upgrade() -> None:
    _comment(NEW, OLD)


def downgrade() -> None:
    _comment(OLD, NEW)
