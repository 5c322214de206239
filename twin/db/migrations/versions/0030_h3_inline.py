"""h3_parent and h3_from_hex not STRICT, so that PostgreSQL inlines them (20x faster per row;
the cell refresh, risk layers and cockpit call them on every row)

Revision ID: 0030_h3_inline
Revises: 0029_area_counts
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0030_h3_inline"
down_revision: str | None = "0029_area_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


def upgrade() -> None:
    op.execute((SQL_DIR / "h3_functions_v2.sql").read_text())


def downgrade() -> None:
    op.execute((SQL_DIR / "h3_functions_v1.sql").read_text())
