"""sense_dead_letter: payloads the SensorThings MQTT bridge refused, with the reason

Revision ID: 0014_sense_dead_letter
Revises: 0013_city_meta
Create Date: 2026-12-04

Every refused MQTT payload (not JSON, not an Observation, unknown datastream, phenomenonTime
too far in the future, a topic that is not a Datastream's Observations) is kept here, raw, with
the reason, so a device's fault can be found and the reading replayed; the bridge never stops.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_sense_dead_letter"
down_revision: str | None = "0013_city_meta"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sense_dead_letter",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column("source", sa.Text, server_default="mqtt", nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("datastream_id", sa.BigInteger, nullable=True),
        sa.Column("username", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sense_dead_letter")),
        schema="twin",
    )  # fmt: skip
    for col in ("received_at", "reason"):
        op.create_index(op.f(f"ix_sense_dead_letter_{col}"), "sense_dead_letter", [col],
                        schema="twin")  # fmt: skip


def downgrade() -> None:
    op.drop_table("sense_dead_letter", schema="twin")
