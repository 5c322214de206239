"""twin.scope_allows without a FROM clause, so that PostgreSQL inlines it into the row-level
security policies (a function call per row of event, task, alert and audit_log before)

Revision ID: 0031_scope_inline
Revises: 0030_h3_inline
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0031_scope_inline"
down_revision: str | None = "0030_h3_inline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"

V1 = """
CREATE OR REPLACE FUNCTION twin.scope_allows(area bigint) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN s IS NULL OR s IN ('', '*') THEN true
        WHEN s = 'none' THEN false
        ELSE coalesce(area = ANY (string_to_array(s, ',')::bigint[]), false)
    END
    FROM (SELECT current_setting('twin.scope', true) AS s) x
$$;
"""


def upgrade() -> None:
    op.execute((SQL_DIR / "scope_allows_v2.sql").read_text())


def downgrade() -> None:
    op.execute(V1)  # access_v1.sql's definition (that file also creates roles and policies)
