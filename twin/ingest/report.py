"""Errors that name the file, row and field, and the summary every ingest ends with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

MAX_LISTED = 10


class Progress(Protocol):
    """Where an ingest reports: a stage by name, and for long stages how many rows of how many
    are done (the CLI draws a bar with a rate and an ETA from them)."""

    def __call__(self, stage: str, done: int | None = None, total: int | None = None) -> None: ...


def quiet(stage: str, done: int | None = None, total: int | None = None) -> None:
    """The default progress sink: says nothing."""


class IngestError(Exception):
    """Bad input: says which file, and where possible which rows and fields, and why."""

    def __init__(
        self,
        path: Path | str,
        message: str,
        *,
        rows: list[int] | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        self.rows = rows or []
        self.field = field
        where = f"{self.path}"
        if field:
            where += f", field {field!r}"
        if self.rows:
            listed = ", ".join(map(str, self.rows[:MAX_LISTED]))
            more = f" and {len(self.rows) - MAX_LISTED} more" if len(self.rows) > MAX_LISTED else ""
            where += f", row{'s' if len(self.rows) > 1 else ''} {listed}{more}"
        super().__init__(f"{where}: {message}")


@dataclass
class Report:
    """What an ingest did. Rows are numbered from 1 in file order (CSV: data rows, no header)."""

    path: str
    kind: str
    read: int = 0
    loaded: int = 0
    repaired: int = 0
    rejected: dict[str, list[int]] = field(default_factory=dict)  # reason -> rows
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    # The finest cells whose rows the ingest changed, old and new positions (not reported):
    # the building ingest's incremental risk refresh rescores only these.
    changed_cells: list[int] = field(default_factory=list, repr=False)
    # The cells that gained or lost their cell_stats row (twin.city.cells.CellRefresh); None:
    # not known (an ingest that does not report them), which is not the same as none.
    rowset_cells: list[int] | None = field(default=None, repr=False)

    def reject(self, reason: str, rows: list[int]) -> None:
        if rows:
            self.rejected.setdefault(reason, []).extend(int(r) for r in rows)

    @property
    def n_rejected(self) -> int:
        return sum(len(v) for v in self.rejected.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "read": self.read,
            "loaded": self.loaded,
            "repaired": self.repaired,
            "rejected": self.n_rejected,
            "rejected_rows": {k: v[:100] for k, v in self.rejected.items()},
            **self.details,
            "seconds": round(self.seconds, 2),
        }
