"""sensor.value_min / value_max: a Datastream's physical range (properties.physicalRange)

Revision ID: 0015_sense_range
Revises: 0014_sense_dead_letter
Create Date: 2026-12-04

A reading outside the range the sensor can physically measure (a rain gauge below 0 mm/h, a
water level above the well's depth) is a fault, not data: the MQTT bridge puts it in the dead
letters and the HTTP API answers 400 (or an error item in the dataArray form). Either bound may
be missing (no limit on that side); both bounds are inclusive.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_sense_range"
down_revision: str | None = "0014_sense_dead_letter"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for col, what in (("value_min", "lowest"), ("value_max", "highest")):
        op.add_column("sensor", sa.Column(
            col, sa.Float, nullable=True,
            comment=f"{what} value the sensor can physically measure, in its unit",
        ), schema="twin")  # fmt: skip
    op.create_check_constraint(
        "range", "sensor", "value_min IS NULL OR value_max IS NULL OR value_min <= value_max",
        schema="twin",
    )  # fmt: skip


def downgrade() -> None:
    op.drop_constraint("range", "sensor", schema="twin", type_="check")
    op.drop_column("sensor", "value_max", schema="twin")
    op.drop_column("sensor", "value_min", schema="twin")
