"""No f-string SQL in twin/ (house rule, docs/ARCHITECTURE.md): statements are packaged .sql
files or psycopg.sql compositions (identifiers quoted, values bound).

The check reads every module with ``ast`` and flags each f-string whose constant text looks
like SQL: a keyword in capitals followed by what follows it in a statement (``SELECT x``,
``FROM t``, ``WHERE c``, ``INSERT INTO``, ``UPDATE t SET``, ``DELETE FROM``, ``CREATE TABLE``
...). Migrations are left out: they are frozen history, run once by alembic on our constants.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "twin"
EXCLUDED = (ROOT / "db" / "migrations",)
#: Where an f-string that reads as SQL is allowed, as "path:line" relative to twin/, each with
#: its reason. Empty: keep it so.
ALLOWED: dict[str, str] = {}

SQL = re.compile(
    r"\b(?:SELECT\s+\S|INSERT\s+INTO\b|UPDATE\s+\S+\s+SET\b|DELETE\s+FROM\b|FROM\s+[\w\"{(]"
    r"|WHERE\s+\S|JOIN\s+\S|ORDER\s+BY\b|GROUP\s+BY\b|RETURNING\s+\S|VALUES\s*\("
    r"|(?:CREATE|DROP|ALTER)\s+(?:OR\s+REPLACE\s+)?(?:TABLE|INDEX|SCHEMA|EXTENSION|ROLE|VIEW"
    r"|POLICY|FUNCTION|TRIGGER|SEQUENCE)\b|TRUNCATE\s+\S|SET\s+\w+\s*(?:=|TO)\s)"
)


def _text(node: ast.JoinedStr) -> str:
    """The f-string's constant parts, each interpolation written as ``{}``."""
    return "".join(
        v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}"
        for v in node.values
    )


def sql_fstrings(source: str) -> list[tuple[int, str]]:
    """(line, text) of every f-string in ``source`` that reads as SQL."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr) and SQL.search(text := _text(node)):
            found.append((node.lineno, text))
    return sorted(found)


def test_no_fstring_sql_in_twin() -> None:
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        if any(path.is_relative_to(d) for d in EXCLUDED):
            continue
        for line, text in sql_fstrings(path.read_text(encoding="utf-8")):
            where = f"{path.relative_to(ROOT)}:{line}"
            if where not in ALLOWED:
                offenders.append(f"twin/{where}: {text[:80]!r}")
    assert not offenders, "f-string SQL (compose with psycopg.sql instead):\n" + "\n".join(
        offenders
    )


@pytest.mark.parametrize(
    "code",
    [
        'f"SELECT {expr} AS fid FROM {{table}} t"',
        'f" WHERE {layer.id_expr} = %(fid)s"',
        'f"CREATE EXTENSION IF NOT EXISTS {name};"',
        'f"DROP SCHEMA IF EXISTS {name} CASCADE;"',
        'f"INSERT INTO twin.{table} (a) VALUES (%s)"',
        'f"UPDATE twin.{table} SET a = 1"',
        'f"DELETE FROM twin.{table}"',
        'f"ALTER TABLE twin.{table} ENABLE ROW LEVEL SECURITY"',
        "f\"SET lock_timeout = '{n}s';\"",
        'f" ORDER BY {order} LIMIT {cap}"',
        'f"JOIN twin.x f ON f.a >= {MIN}"',
    ],
)
def test_detects_sql(code: str) -> None:
    assert sql_fstrings(code), code


@pytest.mark.parametrize(
    "code",
    [
        'f"no collection {name!r}; collections: {ids}"',
        'f"{base}/collections/{layer.id}/items"',
        'f"rows from {file} where the field {name} is empty"',
        'f"select one of {choices}"',
        'f"ST_SimplifyPreserveTopology(t.geom_3857, {tol:.6f})"',
        '"SELECT 1 FROM twin.building"',  # a plain string: packaged or composed, fine
    ],
)
def test_ignores_other_text(code: str) -> None:
    assert not sql_fstrings(code), code
