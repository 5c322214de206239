"""Declarative base, naming convention and the geometry column helpers shared by every table.

Geometry rule of the house: ``geom`` is canonical in EPSG:4326; tables served as tiles also carry
``geom_3857``, a stored generated column (``ST_Transform(geom, 3857)``) so the tile query filters
on an index in the tile's own CRS and never transforms the column per request.
Both get GiST indexes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA = "twin"
#: The partitions of twin.observation, person, event, task_transition and audit_log (reached
#: only through their parent; twin.db.partitions).
PART_SCHEMA = "twin_part"

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(schema=SCHEMA, naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONB,
        datetime: sa.DateTime(timezone=True),
    }


def geom(geometry_type: str, *, nullable: bool = False) -> Mapped[Any]:
    """The canonical geometry column (EPSG:4326)."""
    return mapped_column(Geometry(geometry_type, srid=4326, spatial_index=False), nullable=nullable)


def geom_3857(geometry_type: str, *, nullable: bool = False) -> Mapped[Any]:
    """The stored Web Mercator copy of ``geom`` for tile queries."""
    return mapped_column(
        Geometry(geometry_type, srid=3857, spatial_index=False),
        sa.Computed("ST_Transform(geom, 3857)", persisted=True),
        nullable=nullable,
    )


def gist(table: str, *columns: str) -> tuple[sa.Index, ...]:
    """GiST indexes on the named geometry columns."""
    return tuple(sa.Index(f"ix_{table}_{c}", c, postgresql_using="gist") for c in columns)


def check_in(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    """``CHECK (column IN (...))`` with a stable name (values are constants of ours, not input)."""
    listed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=name)


def row_secured(**options: Any) -> dict[str, Any]:
    """The last ``__table_args__`` entry of a table under forced row-level security: a scoped
    caller sees only its rows (policies in twin/db/sql/access_v1.sql and scope_cells_v1.sql,
    applied by the migrations). ``twin.db.models.ROW_SECURED`` lists these tables; a test
    compares it with ``pg_class.relrowsecurity`` of the migrated database. ``options``: other
    table keywords (``postgresql_partition_by``)."""
    return {"info": {"row_security": True}, **options}


def now_default() -> Mapped[datetime]:
    return mapped_column(server_default=sa.func.now())


def cell_column(*, nullable: bool = True) -> Mapped[int | None]:
    """H3 cell at the finest configured resolution, as signed BIGINT (ids are < 2**63)."""
    return mapped_column(sa.BigInteger, nullable=nullable, index=True)
