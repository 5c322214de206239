"""Progress bars for long commands: rows (or cells) per second and an ETA on every stage.

One set of columns for `twin demo`, `twin ingest ...`, `twin export` and `twin simulate`, so
that a city-sized run always says how fast it goes and how long it has left.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Units per second of the task (rich's own speed estimate over its recent samples)."""

    def __init__(self, unit: str = "rows") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", self.unit)
        if task.speed is None or task.total is None:
            return Text("", style="progress.data.speed")
        return Text(f"{task.speed:,.0f} {unit}/s", style="progress.data.speed")


def columns(label_width: int = 28) -> tuple[ProgressColumn, ...]:
    """Stage, bar, done/total, rate, elapsed, ETA."""
    return (
        TextColumn(f"{{task.description:<{label_width}}}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )


class StageBar:
    """The sink an ingest reports to: ``bar(stage)`` names a stage (pulsing bar), and
    ``bar(stage, done=n, total=N)`` moves its bar, with a rate and an ETA."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None
        self.stage = ""

    def __call__(self, stage: str, done: int | None = None, total: int | None = None) -> None:
        if stage != self.stage or self.task is None:
            if self.task is not None:
                t = self.progress.tasks[self.task]
                # A finished stage stays on screen, full.
                end = t.total or t.completed or 1
                self.progress.update(self.task, total=end, completed=end)
            self.task = self.progress.add_task(stage, total=total)
            self.stage = stage
        self.progress.update(self.task, total=total, completed=done if done is not None else None)


@contextmanager
def stage_bar(*, disable: bool = False) -> Iterator[StageBar]:
    """A `StageBar` on stderr (silent when ``disable``, e.g. with --json)."""
    with Progress(*columns(), console=Console(stderr=True), disable=disable) as progress:
        yield StageBar(progress)
