"""risk one map: cell geometry on risk scores, level snapshots, alert sensitivity and dedup

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21

Risk scores carry their cell polygon (and the stored EPSG:3857 copy) so risk layers tile like
any other layer; ``small_count`` marks cells whose score would reveal a people count below k.
``risk_snapshot`` keeps cells per level and area at each compute, for cockpit trends. Alerts
gain a ``pending`` status (the rule's sensitivity: how many evaluations in a row before an
alert is raised), a subject and an acknowledgement time; task transitions record the actor's
name and the areas of a reassignment; deduplication now covers every alert
that is not resolved. The admin-hierarchy SQL functions roll cells and tasks up to areas.
"""

from collections.abc import Sequence
from pathlib import Path

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


def _geometry(srid: int) -> geoalchemy2.types.Geometry:
    return geoalchemy2.types.Geometry(
        geometry_type="POLYGON", srid=srid, dimension=2, spatial_index=False,
        from_text="ST_GeomFromEWKT", name="geometry", nullable=False,
    )  # fmt: skip


def upgrade() -> None:
    op.execute((SQL_DIR / "admin_functions_v1.sql").read_text())
    # Scores are derived data (nothing wrote them before this revision): start empty.
    op.execute("DELETE FROM twin.risk_score")
    op.add_column(
        "risk_score",
        sa.Column(
            "small_count", sa.Boolean(), server_default=sa.false(), nullable=False,
            comment="a people-count input is 1..k-1 here: the score is hidden from the public",
        ),
        schema="twin",
    )  # fmt: skip
    op.add_column("risk_score", sa.Column("geom", _geometry(4326), nullable=False), schema="twin")
    op.add_column(
        "risk_score",
        sa.Column(
            "geom_3857", _geometry(3857), sa.Computed("ST_Transform(geom, 3857)", persisted=True),
            nullable=False,
        ),
        schema="twin",
    )  # fmt: skip
    op.create_index(
        "ix_risk_score_geom", "risk_score", ["geom"], schema="twin", postgresql_using="gist"
    )
    op.create_index(
        "ix_risk_score_geom_3857", "risk_score", ["geom_3857"], schema="twin",
        postgresql_using="gist",
    )  # fmt: skip
    op.create_table(
        "risk_snapshot",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("layer_id", sa.Text(), nullable=False),
        sa.Column("area_id", sa.BigInteger(), nullable=False),
        sa.Column("blue", sa.Integer(), nullable=False),
        sa.Column("yellow", sa.Integer(), nullable=False),
        sa.Column("orange", sa.Integer(), nullable=False),
        sa.Column("red", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["area_id"], ["twin.admin_area.id"], name=op.f("fk_risk_snapshot_area_id_admin_area"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_snapshot")),
        schema="twin",
    )  # fmt: skip
    op.create_index(
        "ix_risk_snapshot_layer_area", "risk_snapshot", ["layer_id", "area_id", "computed_at"],
        schema="twin",
    )  # fmt: skip
    op.drop_constraint(op.f("ck_alert_status"), "alert", schema="twin")
    op.create_check_constraint(
        op.f("ck_alert_status"), "alert",
        "status IN ('pending', 'active', 'acknowledged', 'resolved')", schema="twin",
    )  # fmt: skip
    op.drop_index("uq_alert_active_dedup", "alert", schema="twin")
    op.create_index(
        "uq_alert_open_dedup", "alert", ["dedup_key"], unique=True, schema="twin",
        postgresql_where=sa.text("status <> 'resolved'"),
    )  # fmt: skip
    op.add_column(
        "alert",
        sa.Column(
            "subject", sa.Text(), nullable=True,
            comment="what the rule looked at: a cell (hex), a sensor code, 'city'",
        ),
        schema="twin",
    )  # fmt: skip
    op.add_column(
        "alert",
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        schema="twin",
    )
    op.add_column(
        "task_transition",
        sa.Column(
            "actor", sa.Text(), server_default="anonymous", nullable=False,
            comment="who, by name (kept if the user goes)",
        ),
        schema="twin",
    )  # fmt: skip
    op.add_column(
        "task_transition", sa.Column("from_area_id", sa.BigInteger(), nullable=True), schema="twin"
    )
    op.add_column(
        "task_transition", sa.Column("to_area_id", sa.BigInteger(), nullable=True), schema="twin"
    )


def downgrade() -> None:
    op.drop_column("task_transition", "to_area_id", schema="twin")
    op.drop_column("task_transition", "from_area_id", schema="twin")
    op.drop_column("task_transition", "actor", schema="twin")
    op.drop_column("alert", "acknowledged_at", schema="twin")
    op.drop_column("alert", "subject", schema="twin")
    op.drop_index("uq_alert_open_dedup", "alert", schema="twin")
    op.execute("UPDATE twin.alert SET status = 'resolved' WHERE status = 'pending'")
    op.create_index(
        "uq_alert_active_dedup", "alert", ["dedup_key"], unique=True, schema="twin",
        postgresql_where=sa.text("status = 'active'"),
    )  # fmt: skip
    op.drop_constraint(op.f("ck_alert_status"), "alert", schema="twin")
    op.create_check_constraint(
        op.f("ck_alert_status"), "alert", "status IN ('active', 'acknowledged', 'resolved')",
        schema="twin",
    )  # fmt: skip
    op.drop_index("ix_risk_snapshot_layer_area", "risk_snapshot", schema="twin")
    op.drop_table("risk_snapshot", schema="twin")
    op.drop_index("ix_risk_score_geom_3857", "risk_score", schema="twin")
    op.drop_index("ix_risk_score_geom", "risk_score", schema="twin")
    op.drop_column("risk_score", "geom_3857", schema="twin")
    op.drop_column("risk_score", "geom", schema="twin")
    op.drop_column("risk_score", "small_count", schema="twin")
    op.execute("DROP FUNCTION IF EXISTS twin.area_subtree(bigint)")
    op.execute("DROP FUNCTION IF EXISTS twin.area_at_level(bigint, text)")
