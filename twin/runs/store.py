"""The life of a ``sim_run`` row: queued -> running -> succeeded | failed, or cancelled.

A queued or running run is cancelled from outside (OGC API Processes dismiss,
``twin/db/sql/sim_runs.sql`` job_dismiss) by setting its status: a cancelled queued run never
starts, a running one stops at its next progress write (at most a second of progress apart),
and its results' transaction rolls back rather than marking it succeeded. Either raises
:class:`RunCancelled` in the worker.

Progress is written on its own autocommit connection, so pollers see it while the run's
results are still being written in their own transaction. Writes are throttled (at most one a
second) because a storm run reports progress many times.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from twin.db.runs import LATEST_RUN_SQL, latest_run_id

__all__ = ["LATEST_RUN_SQL", "RunCancelled", "latest_run_id"]  # the registry's readers too


class RunCancelled(Exception):
    """The run was cancelled (or removed) while queued or running; nothing more is written."""

    def __init__(self, run_id: int) -> None:
        super().__init__(f"run {run_id} was cancelled")
        self.run_id = run_id


def create_run(
    conn: psycopg.Connection, kind: str, params: dict[str, Any], *, created_by: int | None = None
) -> int:
    """A new queued run; returns its id. Commits (the caller's connection is autocommit or
    the caller commits). ``created_by``: the app_user the run is for (None: the public, CLI)."""
    row = conn.execute(
        "INSERT INTO twin.sim_run (kind, params, status, created_by)"
        " VALUES (%s, %s, 'queued', %s) RETURNING id",
        (kind, Jsonb(params), created_by),
    ).fetchone()
    assert row is not None
    return int(row[0])


def start_run(conn: psycopg.Connection, run_id: int) -> None:
    """Mark a queued run running; RunCancelled if it is no longer queued (cancelled)."""
    cur = conn.execute(
        "UPDATE twin.sim_run SET status = 'running', started_at = now(), progress = 0 "
        "WHERE id = %s AND status = 'queued'",
        (run_id,),
    )
    if cur.rowcount != 1:
        raise RunCancelled(run_id)


@contextmanager
def progress_recorder(
    url: str, run_id: int, *, every_s: float = 1.0
) -> Iterator[Callable[[float], None]]:
    """A callback taking a fraction 0..1 that records it on the run, at most once a second, on
    one autocommit connection held for the run. It raises RunCancelled once the run is no
    longer running (cancelled): the solver stops there."""
    last = [0.0]
    with psycopg.connect(url, autocommit=True) as conn:

        def write(fraction: float) -> None:
            now = time.monotonic()
            if now - last[0] < every_s and fraction < 1.0:
                return
            last[0] = now
            cur = conn.execute(
                "UPDATE twin.sim_run SET progress = %s WHERE id = %s AND status = 'running'",
                (min(max(fraction, 0.0), 1.0), run_id),
            )
            if cur.rowcount != 1:
                raise RunCancelled(run_id)

        yield write


def finish_run(
    conn: psycopg.Connection, run_id: int, summary: dict[str, Any], timings: dict[str, float]
) -> None:
    """Mark the run succeeded, in the caller's transaction (with its results); RunCancelled
    (the caller's transaction, results and all, then rolls back) if it is no longer running."""
    cur = conn.execute(
        "UPDATE twin.sim_run SET status = 'succeeded', progress = 1, finished_at = now(), "
        "summary = %s, timings = %s, error = NULL WHERE id = %s AND status = 'running'",
        (Jsonb(json.loads(json.dumps(summary, default=float))), Jsonb(timings), run_id),
    )
    if cur.rowcount != 1:
        raise RunCancelled(run_id)


def fail_run(url: str, run_id: int, error: str, *, retry_s: float = 120.0) -> None:
    """Mark the run failed, on a fresh connection (the run's own transaction is gone).

    The run may have failed because the database went away (a restart): keep trying, with
    backoff, for up to ``retry_s`` seconds, so that the run ends up failed rather than stays
    'running' for ever."""
    deadline = time.monotonic() + retry_s
    delay = 0.5
    while True:
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(
                    "UPDATE twin.sim_run SET status = 'failed', finished_at = now(), error = %s "
                    "WHERE id = %s AND status <> 'cancelled'",
                    (error[:2000], run_id),
                )
            return
        except psycopg.OperationalError:
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 5.0)


def record_run(
    url: str,
    kind: str,
    params: dict[str, Any],
    work: Callable[[int], dict[str, Any]],
    *,
    run_id: int | None = None,
    check: Callable[[psycopg.Connection], None] | None = None,
) -> dict[str, Any]:
    """Run ``work(run_id)`` as a recorded run: created (after ``check``, so bad input leaves no
    run behind) unless ``run_id`` names a queued one, marked running, and marked failed with the
    error if ``work`` raises (which re-raises). RunCancelled (re-raised, the run left
    cancelled) where the run was cancelled before it started or while it ran."""
    with psycopg.connect(url, autocommit=True) as conn:
        if run_id is None:
            if check is not None:
                check(conn)
            run_id = create_run(conn, kind, params)
        start_run(conn, run_id)
    try:
        return work(run_id)
    except RunCancelled:
        raise
    except Exception as exc:
        fail_run(url, run_id, f"{type(exc).__name__}: {exc}")
        raise
