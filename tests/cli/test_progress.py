"""The progress bar of long commands: rows done of rows in all, a rate and an ETA per stage."""

from __future__ import annotations

import io
import time

from rich.console import Console
from rich.progress import Progress

from twin.cli.progress import StageBar, columns


def _bar() -> tuple[StageBar, Progress, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    progress = Progress(*columns(), console=console, auto_refresh=False)
    return StageBar(progress), progress, out


def test_a_counted_stage_shows_done_of_total_a_rate_and_an_eta() -> None:
    bar, progress, out = _bar()
    with progress:
        bar("reading buildings.gpkg")
        for done in range(0, 1_000_001, 100_000):
            bar("writing buildings and addresses", done, 1_000_000)
            time.sleep(0.01)
        progress.refresh()
    tasks = progress.tasks
    assert [t.description for t in tasks] == [
        "reading buildings.gpkg",
        "writing buildings and addresses",
    ]
    writing = tasks[1]
    assert writing.total == 1_000_000 and writing.completed == 1_000_000
    text = out.getvalue()
    assert "1000000/1000000" in text
    # rich's speed estimate over the samples: about 1e5 rows per 0.01 s, shown as rows/s.
    assert writing.speed is not None and writing.speed > 1e5
    assert "rows/s" in text and "eta" in text


def test_an_uncounted_stage_is_closed_when_the_next_begins() -> None:
    bar, progress, _ = _bar()
    with progress:
        bar("refreshing the affected cells")
        bar("done")
    first, second = progress.tasks
    assert first.finished and not second.finished
