"""`twin db dump` / `twin db restore`: a populated twin comes back exactly, damaged archives and
unconfirmed replacements leave the database as it was, older dumps are migrated to head.

Fingerprints are computed here with plain SQL, independent of twin.db.backup.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.script import ScriptDirectory
from psycopg import sql
from typer.testing import CliRunner

from twin.city.demo import build_demo
from twin.cli import app
from twin.db import backup
from twin.db.backup import BackupError, RestoreRefusedError, dump, restore
from twin.db.migrate import alembic_config, head_revision, upgrade
from twin.settings import Settings

runner = CliRunner()


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a child process, on the database TWIN_DATABASE_URL names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env["TWIN_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "twin", "db", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def fingerprints(url: str) -> dict[str, tuple[int, str]]:
    """Per table of schema twin: row count and the md5 of all its rows in a fixed order."""
    with psycopg.connect(url) as c:
        tables = [
            r[0]
            for r in c.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'twin' ORDER BY 1"
            )
        ]
        out: dict[str, tuple[int, str]] = {}
        for t in tables:
            q = sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, '' ORDER BY t::text), '')) FROM {} AS t"
            ).format(sql.Identifier("twin", t))
            row = c.execute(q).fetchone()
            assert row is not None
            out[t] = (row[0], row[1])
        return out


def same_catalog(a: dict[str, list[tuple[Any, ...]]], b: dict[str, list[tuple[Any, ...]]]) -> None:
    """``a == b``, the rows that differ named when not."""
    for key in a.keys() | b.keys():
        left, right = set(a.get(key, [])), set(b.get(key, []))
        assert left == right, (key, sorted(left - right)[:5], sorted(right - left)[:5])
    assert a == b


def catalog(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Structure of schema twin: columns, constraints, indexes, policies, privileges, sequences."""
    queries = {
        "columns": "SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default, is_generated, generation_expression FROM information_schema.columns WHERE table_schema = 'twin' ORDER BY 1, 2",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), condeferrable FROM pg_constraint WHERE connamespace = 'twin'::regnamespace ORDER BY 1, 2",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'twin' ORDER BY 1, 2",
        "policies": "SELECT tablename, policyname, cmd, roles::text, qual, with_check FROM pg_policies WHERE schemaname = 'twin' ORDER BY 1, 2",
        "relations": "SELECT relname, relkind, relacl::text, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relnamespace = 'twin'::regnamespace ORDER BY 1",
        "functions": "SELECT proname, pg_get_functiondef(oid), proacl::text FROM pg_proc WHERE pronamespace = 'twin'::regnamespace ORDER BY 1, 2",
        "schema": "SELECT nspacl::text FROM pg_namespace WHERE nspname = 'twin'",
        "default_acl": "SELECT defaclobjtype, defaclacl::text FROM pg_default_acl WHERE defaclnamespace = 'twin'::regnamespace ORDER BY 1",
        "sequences": "SELECT sequencename, last_value, increment_by, max_value FROM pg_sequences WHERE schemaname = 'twin' ORDER BY 1",
        "geometry_columns": "SELECT f_table_name, f_geometry_column, type, srid, coord_dimension FROM geometry_columns WHERE f_table_schema = 'twin' ORDER BY 1, 2",
    }
    with psycopg.connect(url) as c:
        got = {k: c.execute(q).fetchall() for k, q in queries.items()}  # type: ignore[call-overload]
    # An ACL holding only the owner's full rights is PostgreSQL's default (NULL) spelled out: a
    # REVOKE of the default grants (twin.sense_device) leaves it, a restore may write NULL.
    got["relations"] = [(n, k, None if acl == "{twin=arwdDxt/twin}" else acl, *rest)
                        for n, k, acl, *rest in got["relations"]]  # fmt: skip
    return got


def geometry_summary(url: str) -> dict[str, tuple[Any, ...]]:
    """Per geometry column: rows with a geometry, valid ones, points, SRIDs and the extent."""
    out: dict[str, tuple[Any, ...]] = {}
    with psycopg.connect(url) as c:
        cols = c.execute(
            "SELECT f_table_name, f_geometry_column FROM geometry_columns WHERE f_table_schema = 'twin' ORDER BY 1, 2"
        ).fetchall()
        for table, col in cols:
            q = sql.SQL(
                "SELECT count({c}), count(*) FILTER (WHERE ST_IsValid({c})), sum(ST_NPoints({c})),"
                " array_agg(DISTINCT ST_SRID({c})), ST_Extent({c})::text FROM {t}"
            ).format(c=sql.Identifier(col), t=sql.Identifier("twin", table))
            row = c.execute(q).fetchone()
            assert row is not None
            out[f"{table}.{col}"] = tuple(row)
    return out


@pytest.fixture(scope="module")
def source(make_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh tiny demo twin of its own, plus a few rows in ops tables."""
    url = make_database("twin_backup_src")
    data = tmp_path_factory.mktemp("backup-src")
    build_demo(Settings(_env_file=None, database_url=url, data_dir=data), size="tiny", seed=11)
    with psycopg.connect(url) as c:
        c.execute(
            "INSERT INTO twin.poi (category, name, geom) VALUES"
            " ('clinic', 'Ünïcode ''quoted'' \\ tab\t', ST_SetSRID(ST_MakePoint(114.06, 22.54), 4326)),"
            " ('school', NULL, ST_SetSRID(ST_MakePoint(114.07, 22.55), 4326))"
        )
    return url


@pytest.fixture(scope="module")
def archive(source: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """`twin db dump FILE --json` run for real on the source."""
    file = tmp_path_factory.mktemp("backup") / "twin.dump"
    r = _cli(source, "dump", str(file), "--json")
    assert r.returncode == 0, r.stderr
    return file, json.loads(r.stdout)


@pytest.fixture(scope="module")
def restored(
    make_database: Callable[[str], str], archive: tuple[Path, dict[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """`twin db restore FILE --json` into a second fresh database."""
    url = make_database("twin_backup_dst")
    r = _cli(url, "restore", str(archive[0]), "--json")
    assert r.returncode == 0, r.stderr
    return url, json.loads(r.stdout)


def test_dump_reports_what_it_wrote(source: str, archive: tuple[Path, dict[str, Any]]) -> None:
    file, report = archive
    assert report["bytes"] == file.stat().st_size > 0
    assert file.read_bytes()[:5] == b"PGDMP"  # custom format
    expected = {t: n for t, (n, _) in fingerprints(source).items()}
    assert report["tables"] == expected
    assert report["rows"] == sum(expected.values()) > 1000
    assert report["revision"] == head_revision()
    assert not list(file.parent.glob(".*partial"))


def test_restore_round_trips_exactly(source: str, restored: tuple[str, dict[str, Any]]) -> None:
    url, report = restored
    before, after = fingerprints(source), fingerprints(url)
    assert sum(1 for n, _ in before.values() if n) >= 10
    assert after == before
    same_catalog(catalog(url), catalog(source))
    assert geometry_summary(url) == geometry_summary(source)
    assert report["replaced"] is False
    assert report["revision"] == report["dump_revision"] == head_revision()
    assert report["tables"] == {t: n for t, (n, _) in before.items()}


def test_restored_sequences_continue(source: str, restored: tuple[str, dict[str, Any]]) -> None:
    url, _ = restored
    with psycopg.connect(url) as c:
        owned = c.execute(
            "SELECT s.relname, t.relname, a.attname FROM pg_depend d"
            " JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
            " JOIN pg_class t ON t.oid = d.refobjid"
            " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid"
            " WHERE s.relnamespace = 'twin'::regnamespace AND d.deptype IN ('a', 'i')"
        ).fetchall()
        assert len(owned) >= 10
        for seq, table, col in owned:
            q = sql.SQL("SELECT nextval({}), (SELECT max({}) FROM {})").format(
                sql.Literal(f"twin.{seq}"), sql.Identifier(col), sql.Identifier("twin", table)
            )
            nxt, top = c.execute(q).fetchone()  # type: ignore[misc]
            assert top is None or nxt > top, (seq, nxt, top)
        new_id = c.execute(
            "INSERT INTO twin.poi (category, geom) VALUES ('test', ST_SetSRID(ST_MakePoint(114.05, 22.53), 4326)) RETURNING id"
        ).fetchone()
        assert new_id is not None
        geom = c.execute(
            "SELECT ST_AsText(geom_3857) IS NOT NULL FROM twin.poi WHERE id = %s", new_id
        ).fetchone()
        assert geom == (True,)
        c.rollback()


def test_restore_refuses_without_yes(
    restored: tuple[str, dict[str, Any]], archive: tuple[Path, dict[str, Any]]
) -> None:
    url, _ = restored
    before = fingerprints(url)
    r = runner.invoke(app, ["db", "restore", str(archive[0]), "--database-url", url])
    assert r.exit_code == 1
    assert "--yes" in r.output and "already holds" in r.output
    assert fingerprints(url) == before


def test_restore_with_yes_replaces_everything(
    source: str, restored: tuple[str, dict[str, Any]], archive: tuple[Path, dict[str, Any]]
) -> None:
    url, _ = restored
    with psycopg.connect(url) as c:
        c.execute("CREATE TABLE twin.stray (x int)")
        c.execute("UPDATE twin.building SET height_m = height_m + 1")
        c.execute("DELETE FROM twin.poi WHERE category = 'school'")
    r = runner.invoke(
        app, ["db", "restore", str(archive[0]), "--database-url", url, "--yes", "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["replaced"] is True
    assert fingerprints(url) == fingerprints(source)
    same_catalog(catalog(url), catalog(source))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing"])
def test_bad_archive_leaves_database_unchanged(
    damage: str,
    restored: tuple[str, dict[str, Any]],
    archive: tuple[Path, dict[str, Any]],
    tmp_path: Path,
) -> None:
    url, _ = restored
    bad = tmp_path / "bad.dump"
    data = archive[0].read_bytes()
    if damage == "truncated":
        bad.write_bytes(data[: len(data) * 3 // 4])
        # The table of contents is intact: the failure comes while the data is being replayed.
        assert subprocess.run(["pg_restore", "-l", str(bad)], capture_output=True).returncode == 0
    elif damage == "garbage":
        bad.write_bytes(b"PGDMP" + bytes(2000))
    before, shape = fingerprints(url), catalog(url)
    with pytest.raises(BackupError) as err:
        restore(url, bad, replace=True)
    assert {"truncated": "damaged", "garbage": "not a readable", "missing": "no such file"}[
        damage
    ] in str(err.value)
    assert fingerprints(url) == before
    assert catalog(url) == shape


def test_old_dump_is_migrated_to_head(make_database: Callable[[str], str], tmp_path: Path) -> None:
    head = head_revision()
    previous = (
        ScriptDirectory.from_config(alembic_config("postgresql://"))
        .get_revision(head)
        .down_revision
    )
    assert isinstance(previous, str)
    old = make_database("twin_backup_old")
    upgrade(old, previous)
    result = dump(old, tmp_path / "old.dump")
    assert result.revision == previous
    target = make_database("twin_backup_new")
    restored = restore(target, tmp_path / "old.dump")
    assert (restored.dump_revision, restored.revision) == (previous, head)
    with psycopg.connect(target) as c:
        assert c.execute("SELECT version_num FROM twin.alembic_version").fetchall() == [(head,)]


def test_missing_roles_are_created(make_database: Callable[[str], str], tmp_path: Path) -> None:
    role = f"twin_backup_{uuid.uuid4().hex[:8]}"
    src, dst = make_database("twin_backup_roles"), make_database("twin_backup_roles")
    upgrade(src)
    try:
        with psycopg.connect(src, autocommit=True) as c:
            c.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
            c.execute(sql.SQL("GRANT SELECT ON twin.poi TO {}").format(sql.Identifier(role)))
        dump(src, tmp_path / "roles.dump")
        with psycopg.connect(src, autocommit=True) as c:
            c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        result = restore(dst, tmp_path / "roles.dump")
        assert result.created_roles == [role]
        with psycopg.connect(dst) as c:
            assert c.execute(
                "SELECT has_table_privilege(%s, 'twin.poi', 'SELECT')", (role,)
            ).fetchone() == (True,)
    finally:
        for url in (src, dst):
            with psycopg.connect(url, autocommit=True) as c:
                exists = c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
                if exists:
                    c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with psycopg.connect(src, autocommit=True) as c:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_failed_dump_leaves_no_half_file(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "pg_dump"
    fake.write_text(
        '#!/bin/sh\nfor a in "$@"; do case "$a" in *.partial) echo half > "$a";; esac; done\necho boom >&2\nexit 1\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(backup, "pg_tool", lambda name, major: str(fake))
    target = tmp_path / "out" / "twin.dump"
    target.parent.mkdir()
    target.write_bytes(b"the previous dump")
    with pytest.raises(BackupError, match="pg_dump failed: boom"):
        dump(source, target)
    assert target.read_bytes() == b"the previous dump"
    assert [p.name for p in target.parent.iterdir()] == ["twin.dump"]


def test_nothing_to_dump(make_database: Callable[[str], str], tmp_path: Path) -> None:
    r = runner.invoke(
        app,
        [
            "db",
            "dump",
            str(tmp_path / "x.dump"),
            "--database-url",
            make_database("twin_backup_empty"),
        ],
    )
    assert r.exit_code == 1 and "nothing to dump" in r.output
    assert not (tmp_path / "x.dump").exists()


def test_refused_restore_raises_the_specific_error(
    restored: tuple[str, dict[str, Any]], archive: tuple[Path, dict[str, Any]]
) -> None:
    with pytest.raises(RestoreRefusedError):
        restore(restored[0], archive[0])
