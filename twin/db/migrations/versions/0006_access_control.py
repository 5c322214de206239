"""access control: role twin_api, row-level security on scoped tables, token bookkeeping

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21

API requests run as the NOLOGIN role ``twin_api`` (superusers bypass row-level security, so the
API switches role inside each request's transaction) with the caller's admin-area scope in the
setting ``twin.scope``. Events, tasks, their transitions, alerts and the audit log have row
security enabled and forced. Users gain a last-used time and a revocation time.
"""

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
SCOPED = ("event", "task", "alert", "task_transition", "audit_log")


def upgrade() -> None:
    op.add_column("app_user", sa.Column("last_used_at", sa.DateTime(timezone=True)), schema="twin")
    op.add_column("app_user", sa.Column("revoked_at", sa.DateTime(timezone=True)), schema="twin")
    op.execute((SQL_DIR / "access_v1.sql").read_text())


def downgrade() -> None:
    for table in SCOPED:
        for policy in ("twin_scope", "twin_scope_read", "twin_scope_write"):
            op.execute(f"DROP POLICY IF EXISTS {policy} ON twin.{table}")
        op.execute(f"ALTER TABLE twin.{table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE twin.{table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION IF EXISTS twin.scope_allows(bigint)")
    op.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA twin REVOKE ALL ON TABLES FROM twin_api")
    op.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA twin REVOKE ALL ON SEQUENCES FROM twin_api")
    op.execute("REVOKE ALL ON ALL TABLES IN SCHEMA twin FROM twin_api")
    op.execute("REVOKE ALL ON ALL SEQUENCES IN SCHEMA twin FROM twin_api")
    op.execute("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA twin FROM twin_api")
    op.execute("REVOKE ALL ON SCHEMA twin FROM twin_api")
    op.drop_column("app_user", "revoked_at", schema="twin")
    op.drop_column("app_user", "last_used_at", schema="twin")
