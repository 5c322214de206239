"""Backups of the twin's database: ``twin db dump`` and ``twin db restore``.

A dump is ``pg_dump -Fc`` of the whole database, taken in the snapshot its row counts were read
in. A restore replaces schema ``twin`` and nothing else: one transaction drops the schema, makes
sure the extensions and the roles the dump needs exist, and replays the archive's ``twin``
entries (``--no-owner``: objects belong to the restoring role, privileges are kept). A damaged
archive rolls that transaction back, so the database stays as it was. The schema is then
migrated to head, so a dump made by an older twin comes back current.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from alembic.script import ScriptDirectory
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from twin.db.engine import libpq_url
from twin.db.migrate import alembic_config, upgrade
from twin.db.models import PART_SCHEMA, SCHEMA

_EXTENSION = re.compile(r"^\d+; \d+ \d+ EXTENSION - (\S+)", re.M)
# The twin's schemas: its tables, and the daily partitions of twin.observation.
SCHEMAS = (SCHEMA, PART_SCHEMA)
_SCHEMA_ENTRY = re.compile(
    rf"^\d+; \d+ \d+ (?:SCHEMA|ACL|COMMENT) - (?:SCHEMA )?(?:{SCHEMA}|{PART_SCHEMA}) "
)
_ROLE = re.compile(r'(?: TO | FROM |FOR ROLE )("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)')


class BackupError(RuntimeError):
    """A dump or restore that could not be done (the message says whether anything changed)."""


class RestoreRefusedError(BackupError):
    """The target already holds data and replacing it was not confirmed."""


@dataclass
class DumpResult:
    """What ``dump`` wrote: the file, its size, and the rows of every table of schema twin."""

    file: Path
    bytes: int
    revision: str
    server_version: str
    tables: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


@dataclass
class RestoreResult:
    """What ``restore`` did: revisions before and after, and the rows now in schema twin."""

    file: Path
    database: str
    dump_revision: str
    revision: str
    replaced: bool
    created_roles: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def pg_tool(name: str, major: int) -> str:
    """The client program ``name`` for a server of this major version (Debian layout, then PATH)."""
    candidate = Path(f"/usr/lib/postgresql/{major}/bin/{name}")
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} not found (looked in {candidate.parent} and PATH): "
            f"install postgresql-client-{major}"
        )
    return found


def table_rows(conn: psycopg.Connection) -> dict[str, int]:
    """Exact row counts of the tables of schema twin ({} when there is no such schema)."""
    if conn.execute("SELECT to_regnamespace(%s)", (SCHEMA,)).fetchone() == (None,):
        return {}
    names = conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = to_regnamespace(%s)"
        " AND relkind IN ('r', 'p') AND NOT relispartition ORDER BY relname",
        (SCHEMA,),
    ).fetchall()
    counts: dict[str, int] = {}
    for (name,) in names:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, name))
        row = conn.execute(query).fetchone()
        counts[name] = int(row[0]) if row else 0
    return counts


def dump(url: str, file: Path) -> DumpResult:
    """``pg_dump -Fc`` the database at ``url`` into ``file`` (replaced only when all went well)."""
    start, file = time.perf_counter(), Path(file)
    conninfo, env = _client_args(url)
    with psycopg.connect(libpq_url(url)) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        version, major = _server_version(conn)
        snapshot = _one(conn, "SELECT pg_export_snapshot()")
        conn.execute("SET LOCAL row_security = off")  # as pg_dump: fail rather than count less
        tables = table_rows(conn)
        if "alembic_version" not in tables:
            raise BackupError(
                f"no twin in this database (no {SCHEMA}.alembic_version): nothing to dump; "
                "run `twin db migrate` or `twin demo` first"
            )
        revision = _one(conn, "SELECT version_num FROM twin.alembic_version")
        tmp = file.with_name(f".{file.name}.{os.getpid()}.partial")
        try:
            args = ["-Fc", "-w", f"--snapshot={snapshot}", "-f", str(tmp), "-d", conninfo]
            done = _run([pg_tool("pg_dump", major), *args], env)
            if done.returncode != 0:
                raise BackupError(f"pg_dump failed: {_tail(done.stderr)}")
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, file)
        finally:
            tmp.unlink(missing_ok=True)
    return DumpResult(
        file, file.stat().st_size, revision, version, tables, time.perf_counter() - start
    )


def restore(
    url: str, file: Path, *, replace: bool = False, lock_timeout_s: int = 60
) -> RestoreResult:
    """Replace schema twin of the database at ``url`` with the one in the archive ``file``.

    Parameters
    ----------
    url
        The target database (PostGIS installed, or installable by the restoring role).
    file
        An archive written by ``dump`` (``pg_dump -Fc``).
    replace
        Required when the target's schema twin holds rows: they are replaced.
    lock_timeout_s
        How long to wait for sessions that hold the twin's tables.

    Raises
    ------
    RestoreRefusedError
        The target holds data and ``replace`` is false.
    BackupError
        The file is missing, damaged, not a twin dump or from a newer schema, or replaying it
        failed: the database is unchanged. Or the restore committed but the migration to head
        failed afterwards (the message says to run ``twin db migrate``).
    """
    start, file = time.perf_counter(), Path(file)
    if not file.is_file():
        raise BackupError(f"{file}: no such file")
    conninfo, env = _client_args(url)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        _, major = _server_version(conn)
        conn.execute("SET row_security = off")
        held = {t: n for t, n in table_rows(conn).items() if n and t != "alembic_version"}
        roles = {r for (r,) in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
        database = _one(conn, "SELECT current_database()")
    pg_restore = pg_tool("pg_restore", major)
    toc = _run([pg_restore, "-l", str(file)], env)
    if toc.returncode != 0 or "Format: CUSTOM" not in toc.stdout:
        raise BackupError(f"{file} is not a readable pg_dump archive: {_tail(toc.stderr)}")
    dump_revision = _dump_revision(pg_restore, file, env)
    if held and not replace:
        listed = ", ".join(f"{t} ({n} rows)" for t, n in sorted(held.items())[:5])
        raise RestoreRefusedError(
            f"database {database} already holds a twin ({listed}{', ...' if len(held) > 5 else ''})"
            "; pass --yes to replace it"
        )
    with tempfile.TemporaryDirectory(prefix="twin-restore-") as tmpdir:
        tmp = Path(tmpdir)
        listing, missing = _select_twin(pg_restore, file, toc.stdout, roles, env, tmp)
        extensions = _EXTENSION.findall(toc.stdout)
        # A psql script, not a statement psycopg runs: composed with psycopg.sql all the same
        # (names quoted as identifiers, the timeout a literal) and written out as text.
        prelude = [
            "SET client_min_messages = warning;",
            "BEGIN;",
            _script(sql.SQL("SET lock_timeout = {};").format(
                sql.Literal(f"{int(lock_timeout_s)}s"))),
            *(_script(sql.SQL("CREATE EXTENSION IF NOT EXISTS {};").format(sql.Identifier(e)))
              for e in extensions),
            *(_script(sql.SQL("CREATE ROLE {} NOLOGIN;").format(sql.Identifier(r)))
              for r in missing),
            *(_script(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE;").format(sql.Identifier(name)))
              for name in SCHEMAS),
        ]  # fmt: skip
        psql = [pg_tool("psql", major), "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-d", conninfo]
        script = [pg_restore, "--no-owner", "-L", str(listing), "-f", "-", str(file)]
        _stream(script, psql, "\n".join(prelude) + "\n", env, file, tmp)
    try:
        revision = upgrade(url)
    except Exception as exc:  # alembic and SQLAlchemy errors alike
        raise BackupError(
            f"restored (schema at {dump_revision}), but migrating it to head failed: "
            f"{type(exc).__name__}: {exc}; run `twin db migrate`"
        ) from exc
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("SET row_security = off")
        tables = table_rows(conn)
    return RestoreResult(
        file, database, dump_revision, revision, bool(held), missing, tables,
        time.perf_counter() - start,
    )  # fmt: skip


def _stream(
    producer: list[str],
    consumer: list[str],
    prelude: str,
    env: dict[str, str],
    file: Path,
    tmp: Path,
) -> None:
    """Pipe pg_restore's script into psql inside one transaction, committed only when the whole
    archive was read; on any failure psql is killed before COMMIT, so the server rolls back."""
    with (tmp / "restore.err").open("w+b") as rerr, (tmp / "psql.err").open("w+b") as perr:
        psql = subprocess.Popen(
            consumer, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=perr, env=env
        )
        reader = subprocess.Popen(producer, stdout=subprocess.PIPE, stderr=rerr, env=env)
        assert psql.stdin is not None and reader.stdout is not None
        committed = False
        try:
            psql.stdin.write(prelude.encode())
            shutil.copyfileobj(reader.stdout, psql.stdin, 1 << 20)
            if reader.wait() == 0:
                psql.stdin.write(b"COMMIT;\n")
                psql.stdin.close()
                committed = True
        except BrokenPipeError:
            pass  # psql stopped on an error: its stderr says which
        finally:
            if not committed:
                psql.kill()  # never COMMIT: the connection drops and the server rolls back
                reader.kill()
            psql_rc, reader_rc = psql.wait(), reader.wait()
            reader.stdout.close()
            with contextlib.suppress(BrokenPipeError):
                psql.stdin.close()
        rerr.seek(0)
        perr.seek(0)
        if reader_rc != 0:
            message = _tail(rerr.read().decode(errors="replace"))
            raise BackupError(f"{file} is damaged, database unchanged: {message}")
        if not committed or psql_rc != 0:
            message = _tail(perr.read().decode(errors="replace")) or f"psql exit {psql_rc}"
            raise BackupError(f"restore failed, database unchanged: {message}")


def _select_twin(
    pg_restore: str, file: Path, toc: str, roles: set[str], env: dict[str, str], tmp: Path
) -> tuple[Path, list[str]]:
    """A pg_restore -L listing of schema twin's entries, and the roles its privileges name that
    the server lacks."""
    own = _run([pg_restore, "-l", *(a for n in SCHEMAS for a in ("-n", n)), str(file)],
               env).stdout  # fmt: skip
    keep = {line.split(";")[0] for line in own.splitlines() if re.match(r"\d+;", line)}
    keep |= {line.split(";")[0] for line in toc.splitlines() if _SCHEMA_ENTRY.match(line)}
    listing, acls = tmp / "restore.list", tmp / "acl.list"
    listing.write_text(_listing(toc, keep))
    acls.write_text(_listing(toc, keep, only=(" ACL ",)))
    grants = _run([pg_restore, "-f", "-", "-L", str(acls), str(file)], env).stdout
    wanted = {_unquote(r) for r in _ROLE.findall(grants)}
    return listing, sorted(wanted - roles - {"PUBLIC"})


def _dump_revision(pg_restore: str, file: Path, env: dict[str, str]) -> str:
    """The schema revision recorded in the archive; refuse archives this code cannot migrate."""
    args = ["-a", "-n", SCHEMA, "-t", "alembic_version", "-f", "-", str(file)]
    out = _run([pg_restore, *args], env)
    found = re.search(r"^COPY \S*alembic_version .*\n(\S+)\n\\\.$", out.stdout, re.M)
    if out.returncode != 0 or not found:
        raise BackupError(f"{file} is not a twin dump (no {SCHEMA}.alembic_version row)")
    revision = found.group(1)
    try:
        ScriptDirectory.from_config(alembic_config("postgresql://")).get_revision(revision)
    except Exception as exc:
        raise BackupError(
            f"{file} is at schema revision {revision}, unknown to this twin (a newer version?)"
        ) from exc
    return revision


def _listing(toc: str, keep: set[str], only: tuple[str, ...] = ("",)) -> str:
    """The TOC listing with every entry not kept commented out (pg_restore -L format)."""
    lines = []
    for line in toc.splitlines():
        kept = line.split(";")[0] in keep and any(kind in line for kind in only)
        lines.append(line if kept or line.startswith(";") else f";{line}")
    return "\n".join(lines) + "\n"


def _client_args(url: str) -> tuple[str, dict[str, str]]:
    """A conninfo string without the password, and an environment carrying it (not argv)."""
    params = conninfo_to_dict(libpq_url(url))
    password = params.pop("password", None)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


def _server_version(conn: psycopg.Connection) -> tuple[str, int]:
    num = int(_one(conn, "SHOW server_version_num"))
    return _one(conn, "SHOW server_version"), num // 10000


def _one(conn: psycopg.Connection, query: str) -> str:
    row = conn.execute(query).fetchone()
    assert row is not None
    return str(row[0])


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)


def _script(stmt: sql.Composable) -> str:
    """A composed statement as the text of a psql script (no connection: PostgreSQL's standard
    quoting of identifiers and strings)."""
    return stmt.as_string(None)


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])
