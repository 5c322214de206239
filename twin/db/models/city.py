"""The city model proper: administration, addresses, land, buildings, people and businesses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from twin.db.models.base import (
    Base,
    cell_column,
    check_in,
    geom,
    geom_3857,
    gist,
    now_default,
    row_secured,
)

ADMIN_LEVELS = ("city", "district", "street", "community", "grid")
# GB 50137-2011 urban land-use major classes.
LAND_USE_CLASSES = ("R", "A", "B", "M", "W", "S", "U", "G", "E")
AGE_BANDS = ("0-14", "15-24", "25-44", "45-59", "60-74", "75+")
RESIDENT_TYPES = ("registered", "migrant", "temporary", "foreign")
BUILDING_USES = (
    "residential",
    "commercial",
    "office",
    "industrial",
    "public",
    "education",
    "health",
    "mixed",
    "warehouse",
    "transport",
    "other",
)


class CityMeta(Base):
    """The one city this database holds: its name, centre and the metric CRS of its grids.

    Written by the first ingest that knows the city's extent (OSM) or by the demo build, so
    that every later command reprojects to the same UTM zone without a setting.
    """

    __tablename__ = "city_meta"
    __table_args__ = (sa.CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, server_default="1")
    name: Mapped[str | None] = mapped_column(sa.Text)
    center_lon: Mapped[float] = mapped_column(sa.Float)
    center_lat: Mapped[float] = mapped_column(sa.Float)
    crs: Mapped[str] = mapped_column(sa.Text)
    source: Mapped[str | None] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = now_default()


class AdminArea(Base):
    """Five nested levels: city > district > street > community > grid patch."""

    __tablename__ = "admin_area"
    __table_args__ = (
        check_in("level", ADMIN_LEVELS, "level"),
        *gist("admin_area", "geom", "geom_3857"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    level: Mapped[str] = mapped_column(sa.Text, index=True)
    code: Mapped[str] = mapped_column(sa.Text, unique=True)
    name: Mapped[str] = mapped_column(sa.Text)
    name_en: Mapped[str | None] = mapped_column(sa.Text)
    parent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_area.id", ondelete="RESTRICT"), index=True
    )
    geom: Mapped[Any] = geom("MULTIPOLYGON")
    geom_3857: Mapped[Any] = geom_3857("MULTIPOLYGON")
    attrs: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))


class AdminAreaCell(Base):
    """Area-weighted overlap of an admin area with H3 cells (shares of the area sum to 1)."""

    __tablename__ = "admin_area_cell"

    area_id: Mapped[int] = mapped_column(
        sa.ForeignKey("admin_area.id", ondelete="CASCADE"), primary_key=True
    )
    res: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    cell: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, index=True)
    share: Mapped[float] = mapped_column(sa.Float)


class Address(Base):
    """The standard address base: normalised text, its components and a point."""

    __tablename__ = "address"
    __table_args__ = (
        *gist("address", "geom", "geom_3857"),
        # Substring search on the normal form (GET /api/addresses?q=).
        sa.Index(
            "ix_address_normalized_trgm",
            "normalized",
            postgresql_using="gin",
            postgresql_ops={"normalized": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    text: Mapped[str] = mapped_column(sa.Text, comment="normalised full address")
    normalized: Mapped[str] = mapped_column(sa.Text, unique=True, comment="lookup key")
    components: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    # Deferrable: a building and its address reference each other, so a load inserts both and
    # lets the check run at commit (SET CONSTRAINTS ... DEFERRED).
    building_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey(
            "building.id",
            ondelete="SET NULL",
            use_alter=True,
            deferrable=True,
            initially="IMMEDIATE",
        ),
        index=True,
    )
    area_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_area.id", ondelete="SET NULL"), index=True
    )
    geom: Mapped[Any] = geom("POINT")
    geom_3857: Mapped[Any] = geom_3857("POINT")
    cell: Mapped[int | None] = cell_column()


class Parcel(Base):
    """A land parcel with its GB 50137 land-use class (major letter, optionally a sub-class)."""

    __tablename__ = "parcel"
    __table_args__ = (
        sa.CheckConstraint(
            "left(land_use, 1) IN (" + ", ".join(f"'{c}'" for c in LAND_USE_CLASSES) + ")",
            name="land_use",
        ),
        sa.CheckConstraint("plot_ratio IS NULL OR plot_ratio >= 0", name="plot_ratio"),
        *gist("parcel", "geom", "geom_3857"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    code: Mapped[str | None] = mapped_column(sa.Text, unique=True)
    source_id: Mapped[str | None] = mapped_column(sa.Text)
    land_use: Mapped[str] = mapped_column(sa.String(4), index=True)
    area_m2: Mapped[float | None] = mapped_column(sa.Float)
    plot_ratio: Mapped[float | None] = mapped_column(sa.Float)
    area_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_area.id", ondelete="SET NULL"), index=True
    )
    geom: Mapped[Any] = geom("MULTIPOLYGON")
    geom_3857: Mapped[Any] = geom_3857("MULTIPOLYGON")
    attrs: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))


class ParcelCell(Base):
    """Area-weighted overlap of a parcel with H3 cells (shares of the parcel sum to 1)."""

    __tablename__ = "parcel_cell"

    parcel_id: Mapped[int] = mapped_column(
        sa.ForeignKey("parcel.id", ondelete="CASCADE"), primary_key=True
    )
    res: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    cell: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, index=True)
    share: Mapped[float] = mapped_column(sa.Float)


class Building(Base):
    """A building footprint with height, floors and use; its cell is that of its centroid."""

    __tablename__ = "building"
    __table_args__ = (
        check_in("use", BUILDING_USES, "use"),
        sa.CheckConstraint("height_m IS NULL OR height_m > 0", name="height_m"),
        sa.CheckConstraint("floors IS NULL OR floors > 0", name="floors"),
        *gist("building", "geom", "geom_3857"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    source_id: Mapped[str | None] = mapped_column(sa.Text, index=True)
    name: Mapped[str | None] = mapped_column(sa.Text)
    use: Mapped[str] = mapped_column(sa.Text, index=True)
    height_m: Mapped[float | None] = mapped_column(sa.Float)
    height_source: Mapped[str | None] = mapped_column(
        sa.Text, comment="height, levels, default or survey"
    )
    floors: Mapped[int | None] = mapped_column(sa.SmallInteger)
    year_built: Mapped[int | None] = mapped_column(sa.SmallInteger)
    footprint_m2: Mapped[float | None] = mapped_column(sa.Float)
    address_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("address.id", ondelete="SET NULL", deferrable=True, initially="IMMEDIATE"),
        index=True,
    )
    parcel_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("parcel.id", ondelete="SET NULL"), index=True
    )
    area_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_area.id", ondelete="SET NULL"), index=True
    )
    cell: Mapped[int | None] = cell_column()
    geom: Mapped[Any] = geom("MULTIPOLYGON")
    geom_3857: Mapped[Any] = geom_3857("MULTIPOLYGON")
    clearance_m: Mapped[float] = mapped_column(
        sa.Float,
        sa.Computed("ST_MinimumClearance(ST_Transform(geom, 3857))", persisted=True),
        comment="minimum clearance in EPSG:3857 metres: tiles put a footprint in whole when "
        "snapping to the tile grid cannot make it invalid (twin.tiles.catalog)",
    )
    attrs: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    updated_at: Mapped[datetime] = now_default()


class Person(Base):
    """A resident. Sensitive: never served row by row; only suppressed aggregates leave the DB.

    Partitioned by LIST of ``district_id`` (one partition per district in schema ``twin_part``
    and a DEFAULT one, made by :mod:`twin.city.districts`); a primary key must hold the
    partition key, hence ``(id, district_id)``."""

    __tablename__ = "person"
    __table_args__ = (
        check_in("age_band", AGE_BANDS, "age_band"),
        check_in("resident_type", RESIDENT_TYPES, "resident_type"),
        {
            "comment": "sensitive (core): never served row by row",
            "postgresql_partition_by": "LIST (district_id)",
        },
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    home_building_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("building.id", ondelete="SET NULL"), index=True
    )
    home_address_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("address.id", ondelete="SET NULL"), index=True
    )
    home_floor: Mapped[int | None] = mapped_column(sa.SmallInteger)
    workplace_building_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("building.id", ondelete="SET NULL"), index=True
    )
    age_band: Mapped[str] = mapped_column(sa.Text)
    resident_type: Mapped[str] = mapped_column(sa.Text)
    lives_alone: Mapped[bool] = mapped_column(server_default=sa.false())
    home_cell: Mapped[int | None] = mapped_column(sa.BigInteger, index=True)
    work_cell: Mapped[int | None] = mapped_column(sa.BigInteger, index=True)
    synthetic: Mapped[bool] = mapped_column(
        server_default=sa.false(),
        comment="true: modelled from a population grid (twin ingest population)",
    )
    source: Mapped[str | None] = mapped_column(
        sa.Text, comment="where the row came from, e.g. population:worldpop.tif:2020"
    )
    district_id: Mapped[int] = mapped_column(
        sa.BigInteger,
        primary_key=True,
        server_default="0",
        comment="home district (admin area at level district; 0: none): the partition key",
    )


class Enterprise(Base):
    """A business, located in a building; hazard class 0 (none) to 3 (major hazard)."""

    __tablename__ = "enterprise"
    __table_args__ = (
        sa.CheckConstraint("hazard_class BETWEEN 0 AND 3", name="hazard_class"),
        sa.CheckConstraint("employees IS NULL OR employees >= 0", name="employees"),
        *gist("enterprise", "geom", "geom_3857"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    industry: Mapped[str] = mapped_column(sa.Text, index=True)
    employees: Mapped[int | None] = mapped_column(sa.Integer)
    hazard_class: Mapped[int] = mapped_column(sa.SmallInteger, server_default="0")
    building_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("building.id", ondelete="SET NULL"), index=True
    )
    cell: Mapped[int | None] = cell_column()
    geom: Mapped[Any] = geom("POINT")
    geom_3857: Mapped[Any] = geom_3857("POINT")
    attrs: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))


class Poi(Base):
    """A point of interest (shops, schools, clinics, ...)."""

    __tablename__ = "poi"
    __table_args__ = (*gist("poi", "geom", "geom_3857"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    category: Mapped[str] = mapped_column(sa.Text, index=True)
    name: Mapped[str | None] = mapped_column(sa.Text)
    source_id: Mapped[str | None] = mapped_column(sa.Text)
    cell: Mapped[int | None] = cell_column()
    geom: Mapped[Any] = geom("POINT")
    geom_3857: Mapped[Any] = geom_3857("POINT")
    attrs: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))


class HazardSite(Base):
    """Fuel stations, chemical storage, construction sites, underground spaces, ..."""

    __tablename__ = "hazard_site"
    __table_args__ = (
        sa.CheckConstraint("hazard_class BETWEEN 0 AND 3", name="hazard_class"),
        *gist("hazard_site", "geom", "geom_3857"),
        row_secured(),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    category: Mapped[str] = mapped_column(sa.Text, index=True)
    name: Mapped[str | None] = mapped_column(sa.Text)
    hazard_class: Mapped[int] = mapped_column(sa.SmallInteger, server_default="1")
    enterprise_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("enterprise.id", ondelete="SET NULL"), index=True
    )
    source_id: Mapped[str | None] = mapped_column(sa.Text)
    cell: Mapped[int | None] = cell_column()
    geom: Mapped[Any] = geom("POINT")
    geom_3857: Mapped[Any] = geom_3857("POINT")
    attrs: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
