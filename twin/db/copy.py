"""Bulk writes with COPY: the one helper every loader uses."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

CHUNK_ROWS = 50_000


def copy_rows(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    df: pd.DataFrame,
    *,
    on_rows: Callable[[int], None] | None = None,
) -> None:
    """COPY a frame (columns in order) into ``table`` (schema-qualified name given as 'a.b').

    ``on_rows(n)`` is told after each chunk of ``n`` rows has been sent (progress bars)."""
    schema, _, name = table.rpartition(".")
    ident = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        ident, sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor().copy(stmt) as cp:
        for start in range(0, len(df), CHUNK_ROWS):
            chunk = df.iloc[start : start + CHUNK_ROWS]
            buf = io.StringIO()
            chunk.to_csv(buf, header=False, index=False)
            cp.write(buf.getvalue())
            if on_rows is not None:
                on_rows(len(chunk))


def copy_arrow(
    conn: psycopg.Connection, table: str, columns: Sequence[str], data: pa.Table
) -> None:
    """COPY an Arrow table (``columns`` in order) into ``table``, written as CSV by Arrow's C++
    writer: several times faster than :func:`copy_rows` for tens of millions of rows. Nulls go
    as empty unquoted fields, which COPY reads as NULL; strings are always quoted."""
    schema, _, name = table.rpartition(".")
    ident = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        ident, sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    data = data.select(list(columns))
    options = pacsv.WriteOptions(include_header=False)
    with conn.cursor().copy(stmt) as cp:
        for start in range(0, data.num_rows, 500_000):
            sink = pa.BufferOutputStream()
            pacsv.write_csv(data.slice(start, 500_000), sink, options)
            cp.write(sink.getvalue().to_pybytes())
