"""scope by cell: twin.scope_allows_cell, row-level security on hazard_site

Revision ID: 0012_scope_cells
Revises: 0011_sensorthings
Create Date: 2026-12-03

Rows placed by an H3 cell (hazard sites, and the cells of core risk layers) are within a
caller's scope when the grid patch holding the cell's centre is (``cell_stats.area_id``).
``twin.scope_allows_cell`` says so under the request's ``twin.scope``; hazard sites get row
security with it, as events have with ``twin.scope_allows``.
"""

from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0012_scope_cells"
down_revision: str | None = "0011_sensorthings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


def upgrade() -> None:
    op.execute((SQL_DIR / "scope_cells_v1.sql").read_text())


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS twin_scope ON twin.hazard_site")
    op.execute("ALTER TABLE twin.hazard_site NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE twin.hazard_site DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION IF EXISTS twin.scope_allows_cell(bigint)")
