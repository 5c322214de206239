"""``twin db dump`` and ``twin db restore`` (the work is in twin.db.backup)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer

from twin.cli.support import JsonOpt, emit, fail, load_settings
from twin.db.engine import DatabaseNotConfiguredError, database_url

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="The database (default: TWIN_DATABASE_URL, else the private cluster).",
        show_default=False,
    ),
]


def _url(given: str | None) -> str:
    try:
        return given or database_url(load_settings())
    except DatabaseNotConfiguredError as exc:
        fail(str(exc))


def _table_lines(tables: dict[str, int]) -> str:
    width = max((len(t) for t in tables), default=0)
    return "\n".join(f"  {t:<{width}}  {n:>12,}" for t, n in tables.items())


def db_dump(
    file: Annotated[Path, typer.Argument(help="Archive to write (pg_dump custom format).")],
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Dump the twin's database into FILE (pg_dump -Fc, one consistent snapshot).

    FILE is written under a temporary name and renamed at the end: a failed dump leaves no half
    file (and an older FILE as it was).
    """
    from twin.db.backup import BackupError, dump

    try:
        result = dump(_url(url), file)
    except BackupError as exc:
        fail(str(exc))
    except psycopg.Error as exc:
        fail(f"cannot read the database: {exc}")
    data: dict[str, Any] = {
        "file": str(result.file),
        "bytes": result.bytes,
        "revision": result.revision,
        "server_version": result.server_version,
        "table_count": len(result.tables),
        "rows": result.rows,
        "tables": result.tables,
        "seconds": round(result.seconds, 3),
    }
    human = (
        f"dumped {len(result.tables)} tables, {result.rows:,} rows (schema {result.revision}) "
        f"to {result.file}: {result.bytes / 1024**2:.1f} MiB in {result.seconds:.1f}s\n"
        + _table_lines(result.tables)
    )
    emit(data, as_json, human)


def db_restore(
    file: Annotated[Path, typer.Argument(help="Archive written by `twin db dump`.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Replace the twin when the database already holds one.")
    ] = False,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace the twin (schema twin) with the one in FILE, then migrate it to head.

    All in one transaction: a damaged FILE leaves the database as it was. Never prompts: when
    the database already holds data it refuses unless --yes is given.
    """
    from twin.db.backup import BackupError, restore

    try:
        result = restore(_url(url), file, replace=yes)
    except BackupError as exc:
        fail(str(exc))
    except psycopg.Error as exc:
        fail(f"cannot reach the database: {exc}")
    data: dict[str, Any] = {
        "file": str(result.file),
        "database": result.database,
        "replaced": result.replaced,
        "dump_revision": result.dump_revision,
        "revision": result.revision,
        "created_roles": result.created_roles,
        "table_count": len(result.tables),
        "rows": result.rows,
        "tables": result.tables,
        "seconds": round(result.seconds, 3),
    }
    migrated = (
        f", migrated from {result.dump_revision}" if result.revision != result.dump_revision else ""
    )
    human = (
        f"restored {len(result.tables)} tables, {result.rows:,} rows into {result.database} "
        f"(schema {result.revision}{migrated}) in {result.seconds:.1f}s\n"
        + _table_lines(result.tables)
    )
    emit(data, as_json, human)
