"""sense_device, sense_device_datastream: devices and gateways, and the datastreams they own

Revision ID: 0016_sense_devices
Revises: 0015_sense_range
Create Date: 2026-12-04

A device (or gateway) is a user (``app_user``: its bearer token for HTTP) with an MQTT password
(the broker's PBKDF2-SHA512 ``$7$`` hash) and a set of datastreams it alone may write. Both
tables are managed by local tools (``twin sense device ...``): the API role reads the device's
id, name and user and the links, never the password hash, and writes neither table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_sense_devices"
down_revision: str | None = "0015_sense_range"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sense_device",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("name", sa.Text, nullable=False, comment="its MQTT user name"),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("mqtt_password_hash", sa.Text, nullable=False, comment="mosquitto $7$ format"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sense_device")),
        sa.UniqueConstraint("name", name=op.f("uq_sense_device_name")),
        sa.UniqueConstraint("user_id", name=op.f("uq_sense_device_user_id")),
        sa.ForeignKeyConstraint(["user_id"], ["twin.app_user.id"], ondelete="CASCADE",
                                name=op.f("fk_sense_device_user_id_app_user")),
        schema="twin",
    )  # fmt: skip
    op.create_table(
        "sense_device_datastream",
        sa.Column("device_id", sa.BigInteger, nullable=False),
        sa.Column("sensor_id", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "sensor_id", name=op.f("pk_sense_device_datastream")),
        sa.ForeignKeyConstraint(["device_id"], ["twin.sense_device.id"], ondelete="CASCADE",
                                name=op.f("fk_sense_device_datastream_device_id_sense_device")),
        sa.ForeignKeyConstraint(["sensor_id"], ["twin.sensor.id"], ondelete="CASCADE",
                                name=op.f("fk_sense_device_datastream_sensor_id_sensor")),
        schema="twin",
    )  # fmt: skip
    op.create_index(op.f("ix_sense_device_datastream_sensor_id"), "sense_device_datastream",
                    ["sensor_id"], schema="twin")  # fmt: skip
    # Like app_user: the API reads who a device is and what it owns, and changes nothing; the
    # password hash is for the broker's password file only.
    op.execute("REVOKE ALL ON twin.sense_device FROM twin_api")
    op.execute("GRANT SELECT (id, name, user_id, created_at) ON twin.sense_device TO twin_api")
    op.execute("REVOKE INSERT, UPDATE, DELETE ON twin.sense_device_datastream FROM twin_api")


def downgrade() -> None:
    op.drop_table("sense_device_datastream", schema="twin")
    op.drop_table("sense_device", schema="twin")
