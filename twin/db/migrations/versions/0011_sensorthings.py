"""sensorthings: Things, Locations, Sensors, ObservedProperties, FeaturesOfInterest; sensor
as Datastream, observation as Observation

Revision ID: 0011_sensorthings
Revises: 0010_flood_people_hidden
Create Date: 2026-12-03

OGC SensorThings API 1.1 on the twin's own tables: a Datastream is a row of ``sensor`` (one
quantity, a UCUM unit), an Observation a row of ``observation`` (which gains an ``id``, an
interval end, a result time, a feature of interest and parameters). A sensor may now exist
before it is placed (``geom`` nullable). The other entity sets get tables of their own.
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011_sensorthings"
down_revision: str | None = "0010_flood_people_hidden"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "twin"


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False)


def _props() -> sa.Column:
    return sa.Column("properties", postgresql.JSONB(astext_type=sa.Text()),
                     server_default=sa.text("'{}'::jsonb"), nullable=False)


def _text(name: str, default: str | None = None) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=False, server_default=default)


def _geom() -> sa.Column:
    return sa.Column("geom", geoalchemy2.types.Geometry(
        geometry_type="GEOMETRY", srid=4326, dimension=2, spatial_index=False,
        from_text="ST_GeomFromEWKT", name="geometry", nullable=False), nullable=False)


def upgrade() -> None:
    op.create_table("sta_thing", _id(), _text("name"), _text("description", ""), _props(),
                    sa.PrimaryKeyConstraint("id", name="pk_sta_thing"), schema=S)
    op.create_table("sta_location", _id(), _text("name"), _text("description", ""),
                    _text("encoding_type", "application/geo+json"), _geom(), _props(),
                    sa.PrimaryKeyConstraint("id", name="pk_sta_location"), schema=S)
    op.create_index("ix_sta_location_geom", "sta_location", ["geom"], schema=S,
                    postgresql_using="gist")
    op.create_table(
        "sta_thing_location",
        sa.Column("thing_id", sa.BigInteger(), nullable=False),
        sa.Column("location_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["thing_id"], ["twin.sta_thing.id"], ondelete="CASCADE",
                                name="fk_sta_thing_location_thing_id_sta_thing"),
        sa.ForeignKeyConstraint(["location_id"], ["twin.sta_location.id"], ondelete="CASCADE",
                                name="fk_sta_thing_location_location_id_sta_location"),
        sa.PrimaryKeyConstraint("thing_id", "location_id", name="pk_sta_thing_location"),
        schema=S,
    )
    op.create_index("ix_sta_thing_location_location_id", "sta_thing_location", ["location_id"],
                    schema=S)
    op.create_table(
        "sta_historical_location", _id(),
        sa.Column("thing_id", sa.BigInteger(), nullable=False),
        sa.Column("location_id", sa.BigInteger(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.ForeignKeyConstraint(["thing_id"], ["twin.sta_thing.id"], ondelete="CASCADE",
                                name="fk_sta_historical_location_thing_id_sta_thing"),
        sa.ForeignKeyConstraint(["location_id"], ["twin.sta_location.id"], ondelete="CASCADE",
                                name="fk_sta_historical_location_location_id_sta_location"),
        sa.PrimaryKeyConstraint("id", name="pk_sta_historical_location"), schema=S,
    )
    op.create_index("ix_sta_historical_location_thing_id", "sta_historical_location",
                    ["thing_id"], schema=S)
    op.create_index("ix_sta_historical_location_location_id", "sta_historical_location",
                    ["location_id"], schema=S)
    op.create_table("sta_sensor", _id(), _text("name"), _text("description", ""),
                    _text("encoding_type", "text/plain"), _text("metadata", ""), _props(),
                    sa.PrimaryKeyConstraint("id", name="pk_sta_sensor"), schema=S)
    op.create_table("sta_observed_property", _id(), _text("name"), _text("definition", ""),
                    _text("description", ""), _props(),
                    sa.PrimaryKeyConstraint("id", name="pk_sta_observed_property"), schema=S)
    op.create_table("sta_feature", _id(), _text("name"), _text("description", ""),
                    _text("encoding_type", "application/geo+json"), _geom(), _props(),
                    sa.PrimaryKeyConstraint("id", name="pk_sta_feature"), schema=S)
    op.create_index("ix_sta_feature_geom", "sta_feature", ["geom"], schema=S,
                    postgresql_using="gist")

    # sensor: a Datastream.
    op.alter_column("sensor", "geom", nullable=True, schema=S)
    op.alter_column("sensor", "geom_3857", nullable=True, schema=S)
    for name, comment in (
        ("name", "STA Datastream name"),
        ("description", None),
        ("quantity", "what is measured (the observed property's name)"),
        ("unit_name", "e.g. millimetre per hour"),
        ("unit_definition", "UCUM definition URL"),
        ("observation_type", None),
    ):
        op.add_column("sensor", sa.Column(name, sa.Text(), nullable=True, comment=comment),
                      schema=S)
    for name, table, comment in (
        ("thing_id", "sta_thing", None),
        ("procedure_id", "sta_sensor", "the STA Sensor (instrument or procedure)"),
        ("observed_property_id", "sta_observed_property", None),
    ):
        op.add_column("sensor", sa.Column(name, sa.BigInteger(), nullable=True, comment=comment),
                      schema=S)
        op.create_foreign_key(f"fk_sensor_{name}_{table}", "sensor", table, [name], ["id"],
                              source_schema=S, referent_schema=S, ondelete="SET NULL")
        op.create_index(f"ix_sensor_{name}", "sensor", [name], schema=S)

    # observation: an Observation.
    op.add_column("observation", sa.Column("id", sa.BigInteger(), sa.Identity(always=False),
                                           nullable=False), schema=S)
    op.create_unique_constraint("uq_observation_id", "observation", ["id"], schema=S)
    op.add_column("observation", sa.Column("observed_until", sa.DateTime(timezone=True),
                                           nullable=True,
                                           comment="end of an interval phenomenonTime"),
                  schema=S)
    op.add_column("observation", sa.Column("result_time", sa.DateTime(timezone=True),
                                           nullable=True), schema=S)
    op.add_column("observation", sa.Column("feature_id", sa.BigInteger(), nullable=True),
                  schema=S)
    op.create_foreign_key("fk_observation_feature_id_sta_feature", "observation", "sta_feature",
                          ["feature_id"], ["id"], source_schema=S, referent_schema=S,
                          ondelete="SET NULL")
    op.create_index("ix_observation_feature_id", "observation", ["feature_id"], schema=S)
    op.add_column("observation", sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()),
                                           nullable=True), schema=S)


def downgrade() -> None:
    op.drop_index("ix_observation_feature_id", table_name="observation", schema=S)
    op.drop_constraint("fk_observation_feature_id_sta_feature", "observation", schema=S)
    for name in ("parameters", "feature_id", "result_time", "observed_until"):
        op.drop_column("observation", name, schema=S)
    op.drop_constraint("uq_observation_id", "observation", schema=S)
    op.drop_column("observation", "id", schema=S)
    for name, table in (("thing_id", "sta_thing"), ("procedure_id", "sta_sensor"),
                        ("observed_property_id", "sta_observed_property")):
        op.drop_index(f"ix_sensor_{name}", table_name="sensor", schema=S)
        op.drop_constraint(f"fk_sensor_{name}_{table}", "sensor", schema=S)
        op.drop_column("sensor", name, schema=S)
    for name in ("observation_type", "unit_definition", "unit_name", "quantity", "description",
                 "name"):
        op.drop_column("sensor", name, schema=S)
    op.execute("DELETE FROM twin.sensor WHERE geom IS NULL")
    op.alter_column("sensor", "geom_3857", nullable=False, schema=S)
    op.alter_column("sensor", "geom", nullable=False, schema=S)
    for table in ("sta_feature", "sta_observed_property", "sta_sensor", "sta_historical_location",
                  "sta_thing_location", "sta_location", "sta_thing"):
        op.drop_table(table, schema=S)
