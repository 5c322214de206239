"""Acting on the model: risk scores, alerts, tasks, users and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, INET
from sqlalchemy.orm import Mapped, mapped_column

from twin.db.models.base import Base, check_in, geom, geom_3857, gist, now_default, row_secured

RISK_LEVELS = ("blue", "yellow", "orange", "red")
# pending: the condition holds but not yet for as many evaluations as the rule's sensitivity asks.
ALERT_STATUSES = ("pending", "active", "acknowledged", "resolved")
TASK_STATES = ("open", "accepted", "in_progress", "done", "closed", "rejected", "reassigned")
ROLES = ("public", "viewer", "analyst", "operator", "admin")


class RiskScore(Base):
    """Score (0..100) and four-colour level per risk layer, resolution and cell."""

    __tablename__ = "risk_score"
    __table_args__ = (
        check_in("level", RISK_LEVELS, "level"),
        sa.Index("ix_risk_score_cell", "cell"),
        *gist("risk_score", "geom", "geom_3857"),
    )

    layer_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    res: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    cell: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    score: Mapped[float] = mapped_column(sa.Float)
    level: Mapped[str] = mapped_column(sa.Text)
    components: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    small_count: Mapped[bool] = mapped_column(
        server_default=sa.false(),
        comment="a people-count input is 1..k-1 here: the score is hidden from the public",
    )
    computed_at: Mapped[datetime] = now_default()
    geom: Mapped[Any] = geom("POLYGON")
    geom_3857: Mapped[Any] = geom_3857("POLYGON")


class RiskSnapshot(Base):
    """Cells per level of a risk layer in an admin area at one `twin risk compute` (for trends)."""

    __tablename__ = "risk_snapshot"
    __table_args__ = (
        sa.Index("ix_risk_snapshot_layer_area", "layer_id", "area_id", "computed_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    computed_at: Mapped[datetime]
    layer_id: Mapped[str] = mapped_column(sa.Text)
    area_id: Mapped[int] = mapped_column(sa.ForeignKey("admin_area.id", ondelete="CASCADE"))
    blue: Mapped[int] = mapped_column(sa.Integer)
    yellow: Mapped[int] = mapped_column(sa.Integer)
    orange: Mapped[int] = mapped_column(sa.Integer)
    red: Mapped[int] = mapped_column(sa.Integer)


class Alert(Base):
    """A rule hit; one active alert per dedup key, counted and escalated while it recurs."""

    __tablename__ = "alert"
    __table_args__ = (
        check_in("status", ALERT_STATUSES, "status"),
        check_in("level", RISK_LEVELS, "level"),
        # One open (pending, active or acknowledged) alert per dedup key: deduplication.
        sa.Index(
            "uq_alert_open_dedup",
            "dedup_key",
            unique=True,
            postgresql_where=sa.text("status <> 'resolved'"),
        ),
        row_secured(),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    rule_id: Mapped[str] = mapped_column(sa.Text, index=True)
    dedup_key: Mapped[str] = mapped_column(sa.Text)
    subject: Mapped[str | None] = mapped_column(
        sa.Text, comment="what the rule looked at: a cell (hex), a sensor code, 'city'"
    )
    level: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.Text, server_default="active")
    area_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_area.id", ondelete="SET NULL"), index=True
    )
    cell: Mapped[int | None] = mapped_column(sa.BigInteger)
    value: Mapped[float | None] = mapped_column(sa.Float)
    threshold: Mapped[float | None] = mapped_column(sa.Float)
    message: Mapped[str] = mapped_column(sa.Text)
    hits: Mapped[int] = mapped_column(sa.Integer, server_default="1")
    escalation: Mapped[int] = mapped_column(sa.SmallInteger, server_default="0")
    sim_run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sim_run.id", ondelete="SET NULL"))
    first_seen: Mapped[datetime] = now_default()
    last_seen: Mapped[datetime] = now_default()
    acknowledged_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    tx: Mapped[int] = mapped_column(
        sa.BigInteger,
        server_default=sa.text("(pg_current_xact_id()::text)::bigint"),
        index=True,
        comment="id of the transaction that last wrote the row (change feed)",
    )


class Task(Base):
    """A task dispatched to an admin area (grid patch up to district)."""

    __tablename__ = "task"
    __table_args__ = (
        check_in("state", TASK_STATES, "state"),
        sa.CheckConstraint("priority BETWEEN 1 AND 4", name="priority"),
        row_secured(),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    title: Mapped[str] = mapped_column(sa.Text)
    description: Mapped[str | None] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(sa.Text, server_default="open", index=True)
    priority: Mapped[int] = mapped_column(sa.SmallInteger, server_default="2")
    area_id: Mapped[int] = mapped_column(
        sa.ForeignKey("admin_area.id", ondelete="RESTRICT"), index=True
    )
    cell: Mapped[int | None] = mapped_column(sa.BigInteger)
    alert_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("alert.id", ondelete="SET NULL"), index=True
    )
    # No foreign key: twin.event is partitioned by time (its key is (id, occurred_at)) and its
    # old months detach past the retention while tasks keep the id. Deleting an event clears
    # it here (trigger event_forget_tasks, migration 0023).
    event_id: Mapped[int | None] = mapped_column(
        sa.BigInteger, index=True, comment="the event (twin.event.id) the task answers"
    )
    created_by: Mapped[int | None] = mapped_column(
        sa.ForeignKey("app_user.id", ondelete="SET NULL")
    )
    assignee_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("app_user.id", ondelete="SET NULL")
    )
    due_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = now_default()
    updated_at: Mapped[datetime] = now_default()


class TaskTransition(Base):
    """Every state change of a task: from, to, who and when.

    Partitioned by RANGE of ``at`` by UTC month (:mod:`twin.db.history`): key ``(id, at)``."""

    __tablename__ = "task_transition"
    __table_args__ = (
        check_in("to_state", TASK_STATES, "to_state"),
        sa.Index("ix_task_transition_at", "at", postgresql_using="brin"),
        row_secured(postgresql_partition_by="RANGE (at)"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    task_id: Mapped[int] = mapped_column(sa.ForeignKey("task.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(sa.Text)
    to_state: Mapped[str] = mapped_column(sa.Text)
    by_user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("app_user.id", ondelete="SET NULL")
    )
    actor: Mapped[str] = mapped_column(
        sa.Text, server_default="anonymous", comment="who, by name (kept if the user goes)"
    )
    from_area_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    to_area_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    note: Mapped[str | None] = mapped_column(sa.Text)
    at: Mapped[datetime] = mapped_column(server_default=sa.func.now(), primary_key=True)
    tx: Mapped[int] = mapped_column(
        sa.BigInteger,
        server_default=sa.text("(pg_current_xact_id()::text)::bigint"),
        index=True,
        comment="id of the transaction that last wrote the row (change feed)",
    )


class AppUser(Base):
    """A user: role times scope (admin area ids). Only the token's hash is stored."""

    __tablename__ = "app_user"
    __table_args__ = (check_in("role", ROLES, "role"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text, unique=True)
    role: Mapped[str] = mapped_column(sa.Text)
    scope: Mapped[list[int]] = mapped_column(
        ARRAY(sa.BigInteger), server_default=sa.text("'{}'::bigint[]")
    )
    token_hash: Mapped[str] = mapped_column(sa.Text, unique=True)
    disabled: Mapped[bool] = mapped_column(server_default=sa.false())
    created_at: Mapped[datetime] = now_default()
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditLog(Base):
    """Who read personal layers or changed anything, what, when and in which area.

    Partitioned by RANGE of ``at`` by UTC month (:mod:`twin.db.history`): key ``(id, at)``."""

    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index("ix_audit_log_at", "at", postgresql_using="brin"),
        row_secured(postgresql_partition_by="RANGE (at)"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(server_default=sa.func.now(), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("app_user.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(sa.Text)
    resource: Mapped[str] = mapped_column(sa.Text)
    area_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    client: Mapped[str | None] = mapped_column(INET)
    detail: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
