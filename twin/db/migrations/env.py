"""Alembic environment: migrations of schema ``twin``; the version table lives there too."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from twin.db.models import SCHEMA, metadata

config = context.config


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Only our schema: PostGIS's spatial_ref_sys (public) and tiger/topology are not ours."""
    if type_ == "schema":
        return name == SCHEMA
    return True


def run_migrations(connection: sa.Connection) -> None:
    connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=SCHEMA,
        include_schemas=True,
        include_name=include_name,
        compare_type=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    from twin.db.migrate import migration_engine

    engine = migration_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        run_migrations(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `twin db migrate`")
run_online()
