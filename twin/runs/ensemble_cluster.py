"""Ensemble members as tasks on a Dask distributed cluster.

The client scatters the grid to every worker once, maps :func:`twin.sim.ensemble.run_member`
over the members and hands back each member's maxima as it completes. ``scheduler="local"``
starts a :class:`distributed.LocalCluster` of worker processes (one thread each: the flood
kernel is single-threaded numba, and processes sidestep the GIL); any other value is the address
of a running scheduler (``tcp://host:8786``), whose workers must have the same ``twin`` and
libraries installed (the project's image). ``scheduler="serial"`` runs the members one after
another in this process, without Dask (the reference the distributed run is checked against).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from twin.sim.ensemble import Member, MemberGrid, MemberMaxima, run_member

LOCAL = "local"
SERIAL = "serial"


class ClusterError(RuntimeError):
    """The scheduler cannot be reached or a worker failed; names the scheduler."""


def default_workers() -> int:
    """Workers of a local cluster: the CPUs, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


@contextmanager
def open_client(
    scheduler: str, *, workers: int | None = None, connect_timeout_s: float = 10.0
) -> Iterator[Any]:
    """A ``distributed.Client`` on a new local cluster (``"local"``) or on ``scheduler``'s
    address; the local cluster is closed on exit."""
    from distributed import Client, LocalCluster

    if scheduler == LOCAL:
        n = workers or default_workers()
        with (
            LocalCluster(
                n_workers=n, processes=True, threads_per_worker=1,
                dashboard_address=":0", silence_logs=40,  # any free port; logging.ERROR
            ) as cluster,
            Client(cluster) as client,
        ):  # fmt: skip
            yield client
        return
    try:
        client = Client(scheduler, timeout=f"{connect_timeout_s}s")
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"scheduler {scheduler}: cannot connect: {exc}") from exc
    with client:
        yield client


def map_members(client: Any, grid: MemberGrid, members: Sequence[Member]) -> Iterator[MemberMaxima]:
    """Run ``members`` on the client's workers; yields their maxima as they complete (in no
    particular order). Pending members are cancelled if the caller stops early or one fails."""
    from distributed import as_completed

    [grid_future] = client.scatter([grid], broadcast=True)
    token = uuid.uuid4().hex[:12]
    futures = client.map(
        run_member, [grid_future] * len(members), list(members),
        key=[f"twin-member-{token}-{m.index}" for m in members], pure=False,
    )  # fmt: skip
    try:
        for future in as_completed(futures):
            yield future.result()
            future.release()
    finally:
        client.cancel(futures)
        client.cancel([grid_future])


def run_members(
    grid: MemberGrid,
    members: Sequence[Member],
    *,
    scheduler: str = LOCAL,
    workers: int | None = None,
    client: Any = None,
    on_done: Callable[[MemberMaxima, int], None] | None = None,
) -> Iterator[MemberMaxima]:
    """Members' maxima as they complete, on ``scheduler`` (``"local"``, ``"serial"`` or an
    address) or on an open ``client``; ``on_done(maxima, done_so_far)`` after each."""
    done = 0
    if client is not None:
        for out in map_members(client, grid, members):
            done += 1
            if on_done is not None:
                on_done(out, done)
            yield out
        return
    if scheduler == SERIAL:
        for member in members:
            out = run_member(grid, member)
            done += 1
            if on_done is not None:
                on_done(out, done)
            yield out
        return
    with open_client(scheduler, workers=workers) as client:
        for out in map_members(client, grid, members):
            done += 1
            if on_done is not None:
                on_done(out, done)
            yield out
