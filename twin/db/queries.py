"""Named SQL statements from packaged ``.sql`` files.

A file holds statements each introduced by a ``-- name: <name>`` line; parameters are bound by
psycopg (``%(name)s``), never formatted into the text.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).parent / "sql"
_NAME = re.compile(r"^--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$", re.MULTILINE)


@cache
def load(file: str) -> dict[str, str]:
    """All named statements of ``twin/db/sql/<file>``."""
    text = (SQL_DIR / file).read_text()
    parts = _NAME.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in out:
            raise ValueError(f"{file}: statement {name!r} defined twice")
        out[name] = body.strip()
    return out


def query(file: str, name: str) -> str:
    try:
        return load(file)[name]
    except KeyError:
        raise KeyError(f"{file} has no statement named {name!r}") from None
