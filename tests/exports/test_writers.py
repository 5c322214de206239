"""The export pipeline without a database: rows fetched in chunks become batches of at most the
chunk size, and GeoParquet gathers them into row groups of ``ROW_GROUP_ROWS`` (the last one
holding the rest), rows in order; an export of no rows is a valid file with no row group."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import shapely

from twin.exports.source import arrow_schema, chunks
from twin.exports.writers import ROW_GROUP_ROWS, write

Row = tuple[Any, ...]
NAMES = ["fid", "geometry", "xmin", "ymin", "xmax", "ymax", "height_m"]
OIDS = [20, 17, 701, 701, 701, 701, 701]


def _rows(n: int) -> list[Row]:
    out = []
    for i in range(n):
        x, y = 120 + (i % 100) * 1e-3, 30 + (i // 100) * 1e-3
        wkb = shapely.to_wkb(shapely.box(x, y, x + 1e-4, y + 1e-4))
        out.append((i, wkb, x, y, x + 1e-4, y + 1e-4, float(i % 7)))
    return out


def _fetcher(rows: list[Row], sizes: list[int]) -> Callable[[int], list[Row]]:
    at = [0]

    def fetch(n: int) -> list[Row]:
        sizes.append(n)
        got = rows[at[0] : at[0] + n]
        at[0] += len(got)
        return got

    return fetch


def test_batches_of_the_chunk_and_row_groups_gathered(tmp_path: Path) -> None:
    n = 3 * ROW_GROUP_ROWS + 1234
    rows = _rows(n)
    schema = arrow_schema(NAMES, OIDS)
    asked: list[int] = []
    batches = list(chunks(_fetcher(rows, asked), schema, size=3000))
    assert [b.num_rows for b in batches] == [3000] * (n // 3000) + [n % 3000]
    assert set(asked) == {3000}
    out = tmp_path / "b.parquet"
    tally = write("parquet", iter(batches), schema, out)
    assert tally.rows == n
    meta = pq.ParquetFile(out).metadata
    # 3,000-row batches gathered until a group holds 20,000 or more: 21,000, 21,000, the rest.
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert groups == [21_000, 21_000, n - 42_000]
    table = pq.read_table(out)
    assert table.column("fid").to_pylist() == list(range(n))
    assert table.column("height_m").to_pylist() == [float(i % 7) for i in range(n)]
    bounds = [min(r[2] for r in rows), min(r[3] for r in rows), max(r[4] for r in rows),
              max(r[5] for r in rows)]  # fmt: skip
    assert tally.bbox == bounds


def test_no_rows_is_a_file_with_no_row_group(tmp_path: Path) -> None:
    schema = arrow_schema(NAMES, OIDS)
    out = tmp_path / "empty.parquet"
    tally = write("parquet", chunks(_fetcher([], []), schema), schema, out)
    assert tally.rows == 0 and tally.bbox is None
    f = pq.ParquetFile(out)
    assert f.metadata.num_row_groups == 0 and f.metadata.num_rows == 0
    assert "geo" in {k.decode() for k in f.schema_arrow.metadata}
