"""deferrable address <-> building keys; cell area comment

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

A building and its address reference each other. Making both keys deferrable lets a bulk load
COPY both tables with their final ids and have the keys checked at commit, instead of
inserting and then updating every row again.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = (
    ("address", "fk_address_building_id_building", "building_id", "building"),
    ("building", "fk_building_address_id_address", "address_id", "address"),
)


def _recreate(deferrable: bool) -> None:
    for table, name, column, target in KEYS:
        op.drop_constraint(name, table, schema="twin", type_="foreignkey")
        op.create_foreign_key(
            name, table, target, [column], ["id"], source_schema="twin", referent_schema="twin",
            ondelete="SET NULL", deferrable=deferrable or None,
            initially="IMMEDIATE" if deferrable else None,
        )


def upgrade() -> None:
    _recreate(True)
    op.execute(
        "COMMENT ON COLUMN twin.cell_stats.area_id IS "
        "'the grid patch holding the cell centre, else the one overlapping it most'"
    )


def downgrade() -> None:
    _recreate(False)
    op.execute(
        "COMMENT ON COLUMN twin.cell_stats.area_id IS 'the finest admin area holding the cell centre'"
    )
