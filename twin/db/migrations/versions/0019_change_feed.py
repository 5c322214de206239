"""change feed: a committing transaction's id on alerts and task transitions, for /api/stream

Revision ID: 0019_change_feed
Revises: 0018_nowcast
Create Date: 2026-12-04

``tx`` is the id of the transaction that last wrote the row (``pg_current_xact_id()``; set on
insert by the default and on every update of an alert by a trigger). The push channel reads
rows with ``tx`` below the oldest transaction still running (``pg_snapshot_xmin``): no row can
later appear below that mark, so a stream that resumes from it misses nothing, even when
transactions commit out of the order they started in (which identity ids or timestamps would
get wrong).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_change_feed"
down_revision: str | None = "0018_nowcast"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TX_DEFAULT = "(pg_current_xact_id()::text)::bigint"
TABLES = ("alert", "task_transition")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table,
            sa.Column("tx", sa.BigInteger, server_default=sa.text(TX_DEFAULT), nullable=False,
                      comment="id of the transaction that last wrote the row (change feed)"),
            schema="twin",
        )  # fmt: skip
        op.create_index(op.f(f"ix_{table}_tx"), table, ["tx"], schema="twin")
    op.execute(
        "CREATE FUNCTION twin.touch_tx() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN NEW.tx := (pg_current_xact_id()::text)::bigint; RETURN NEW; END $$"
    )
    op.execute(
        "CREATE TRIGGER alert_touch_tx BEFORE UPDATE ON twin.alert"
        " FOR EACH ROW EXECUTE FUNCTION twin.touch_tx()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS alert_touch_tx ON twin.alert")
    op.execute("DROP FUNCTION IF EXISTS twin.touch_tx()")
    for table in TABLES:
        op.drop_index(op.f(f"ix_{table}_tx"), table_name=table, schema="twin")
        op.drop_column(table, "tx", schema="twin")
