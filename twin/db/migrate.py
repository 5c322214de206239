"""Applying and inspecting the alembic migrations programmatically (used by `twin db migrate`,
the API's health check and the tests)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from twin.db.engine import sqlalchemy_url
from twin.db.models import SCHEMA

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would eat a literal '%' in a password.
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()
    assert head is not None, "no migrations found"
    return head


def migration_engine(url: str) -> sa.Engine:
    """An engine whose default schema is ``public``, never ``twin``.

    Alembic compares reflected tables of the default schema under the name ``None``; when the
    login role is called ``twin`` its ``$user`` search path would make ``twin`` the default and
    every table would look new. Pinning the search path keeps the comparison honest.
    """
    return sa.create_engine(
        sqlalchemy_url(url),
        poolclass=sa.NullPool,
        connect_args={"options": "-c search_path=public"},
    )


def upgrade(url: str, revision: str = "head") -> str:
    """Migrate the database at ``url`` to ``revision``; returns the revision it ends at."""
    engine = migration_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        with engine.connect() as conn:
            return current_revision(conn) or "base"
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    engine = migration_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)
    finally:
        engine.dispose()


def current_revision(conn: sa.Connection) -> str | None:
    """The revision the database is at (None when never migrated)."""
    ctx = MigrationContext.configure(conn, opts={"version_table_schema": SCHEMA})
    return ctx.get_current_revision()
