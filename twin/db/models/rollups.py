"""Roll-ups of readings (5 minutes and 1 hour, per datastream and per H3 cell), the queue of
hours to re-aggregate, and the days whose raw partitions were detached.

Statement triggers on ``observation`` queue each (sensor, hour) a statement touches;
:func:`twin.sense.rollups.refresh` re-aggregates the queued hours from the raw rows. ``mean``
is ``sum / n``; ``first_at`` and ``last_at`` are the earliest and latest phenomenon times.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from twin.db.models.base import Base, now_default


class _Stats:
    n: Mapped[int] = mapped_column(sa.Integer, comment="readings in the bucket")
    min: Mapped[float] = mapped_column(sa.Float)
    max: Mapped[float] = mapped_column(sa.Float)
    sum: Mapped[float] = mapped_column(sa.Float)
    mean: Mapped[float] = mapped_column(sa.Float, sa.Computed("sum / n", persisted=True))
    first_at: Mapped[datetime] = mapped_column(comment="earliest phenomenon time")
    last_at: Mapped[datetime] = mapped_column(comment="latest phenomenon time")


class ObservationRollup5min(_Stats, Base):
    """Readings of one datastream in a 5-minute bucket (``bucket`` is its start, UTC)."""

    __tablename__ = "observation_5min"
    __table_args__ = (sa.Index("ix_observation_5min_bucket", "bucket"),)

    sensor_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sensor.id", ondelete="CASCADE"), primary_key=True
    )
    bucket: Mapped[datetime] = mapped_column(primary_key=True)


class ObservationRollup1h(_Stats, Base):
    """Readings of one datastream in an hour."""

    __tablename__ = "observation_1h"
    __table_args__ = (sa.Index("ix_observation_1h_bucket", "bucket"),)

    sensor_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sensor.id", ondelete="CASCADE"), primary_key=True
    )
    bucket: Mapped[datetime] = mapped_column(primary_key=True)


class _CellKey:
    res: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    cell: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    unit: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    datastreams: Mapped[int] = mapped_column(sa.Integer, comment="datastreams with readings")


class ObservationCellRollup5min(_CellKey, _Stats, Base):
    """Readings of the sensors of one kind and unit in an H3 cell, per 5 minutes."""

    __tablename__ = "observation_cell_5min"
    __table_args__ = (sa.Index("ix_observation_cell_5min_bucket", "bucket"),)


class ObservationCellRollup1h(_CellKey, _Stats, Base):
    """Readings of the sensors of one kind and unit in an H3 cell, per hour."""

    __tablename__ = "observation_cell_1h"
    __table_args__ = (sa.Index("ix_observation_cell_1h_bucket", "bucket"),)


class ObservationRollupQueue(Base):
    """An hour of a datastream whose readings changed since its roll-ups were computed.

    An append-only log (an hour may be queued many times): no unique key, so concurrent
    writers of one sensor and hour never wait on each other's queue rows."""

    __tablename__ = "observation_rollup_queue"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    sensor_id: Mapped[int] = mapped_column(sa.BigInteger)
    hour: Mapped[datetime]
    queued_at: Mapped[datetime] = now_default()


class ObservationDetached(Base):
    """A day whose raw partition was detached past the retention (its roll-ups stay)."""

    __tablename__ = "observation_detached"

    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    partition: Mapped[str] = mapped_column(sa.Text, comment="table in schema twin_part")
    rows: Mapped[int] = mapped_column(sa.BigInteger)
    dropped: Mapped[bool] = mapped_column(server_default=sa.false())
    detached_at: Mapped[datetime] = now_default()
