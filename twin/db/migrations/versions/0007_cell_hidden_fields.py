"""cell statistics: the people fields hidden from the public (complementary suppression)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21

Hiding counts below k is not enough: a hidden count can be worked out as its parent minus its
visible siblings. Every cell-statistics refresh now decides, over the whole hierarchy, which
people fields to hide from callers without the right (``twin.privacy.cell_hidden_fields``) and
stores them here, so the API, tiles and Features read one answer. Existing rows are marked by
the next refresh; until then readers still apply primary suppression.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "cell_stats",
        sa.Column(
            "hidden", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]"),
            comment="people fields hidden from the public (primary and complementary "
            "suppression, twin.privacy.cell_hidden_fields)",
        ),
        schema="twin",
    )


def downgrade() -> None:
    op.drop_column("cell_stats", "hidden", schema="twin")
