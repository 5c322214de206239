"""Where the database is, and engines to reach it.

One rule decides the database: ``TWIN_DATABASE_URL`` when set, otherwise the private cluster that
``twin db start`` manages under ``settings.data_dir``.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from twin.db.cluster import LocalCluster
from twin.settings import Settings


class DatabaseNotConfiguredError(RuntimeError):
    """Neither ``TWIN_DATABASE_URL`` nor a private cluster is there to connect to."""


def local_cluster(settings: Settings) -> LocalCluster:
    """The private cluster for these settings (it may not exist yet)."""
    return LocalCluster(
        settings.data_dir, db_name=settings.db_name, port=settings.db_port, os_user=settings.db_user
    )


def database_url(settings: Settings) -> str:
    """The libpq URL (``postgresql://...``) of the twin's database."""
    if settings.database_url:
        return libpq_url(settings.database_url)
    url = local_cluster(settings).url()
    if url is None:
        raise DatabaseNotConfiguredError(
            "no database: run `twin db start` (a private PostGIS cluster under "
            f"{settings.data_dir}) or set TWIN_DATABASE_URL"
        )
    return url


def libpq_url(url: str) -> str:
    """``postgresql+psycopg://`` (SQLAlchemy form) -> ``postgresql://`` (libpq form)."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)


def sqlalchemy_url(url: str) -> str:
    """Any PostgreSQL URL -> the SQLAlchemy form with the psycopg 3 driver."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql+psycopg://", url)


def create_engine(settings: Settings, **kwargs: object) -> sa.Engine:
    """A SQLAlchemy engine on the twin's database (psycopg 3 driver)."""
    return sa.create_engine(sqlalchemy_url(database_url(settings)), pool_pre_ping=True, **kwargs)
