"""Ensemble members on a 2-worker Dask LocalCluster (separate processes) are the same members
run one after another here, bit for bit, and so are the exceedance probabilities."""

from __future__ import annotations

import os

import numpy as np
import pytest

from twin.runs.ensemble_cluster import ClusterError, open_client, run_members
from twin.runs.ensemblespec import parse
from twin.sim.ensemble import Member, MemberGrid, run_member

SPEC = {
    "return_periods_years": [5, 100],
    "durations": ["10min"],
    "after": "5min",
    "perturbations": {
        "factors": [0.7, 1.3],
        "random": {"members": 2, "seed": 11, "sigma": 0.5, "length_m": 20},
    },
}


def small_grid() -> MemberGrid:
    """A 24 x 30 tilted bowl (5 m cells) with a rougher, draining band: water pools and moves."""
    y, x = np.mgrid[0:24, 0:30] * 5.0
    bed = 0.002 * (x - 75.0) ** 2 / 10 + 0.001 * (y - 60.0) ** 2 / 10 + 0.01 * x
    manning = np.where(y > 60, 0.05, 0.02)
    drainage = np.where(x < 40, 5.0 / 3_600_000, 0.0)  # 5 mm/h
    return MemberGrid(bed=bed, dx=5.0, manning=manning, drainage_m_s=drainage)


@pytest.fixture(scope="module")
def members() -> list[Member]:
    return parse(SPEC).members()


@pytest.fixture(scope="module")
def serial(members: list[Member]) -> dict[int, np.ndarray]:
    grid = small_grid()
    return {m.index: run_member(grid, m).max_depth for m in members}


@pytest.fixture(scope="module")
def distributed(members: list[Member]) -> tuple[dict[int, np.ndarray], set[int]]:
    from distributed import Client, LocalCluster

    grid = small_grid()
    with (
        LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                     dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        out = {r.index: r.max_depth for r in run_members(grid, members, client=client)}
        pids = set(client.run(os.getpid).values())
    return out, pids


def test_the_spec_makes_every_period_duration_and_perturbation(members: list[Member]) -> None:
    assert len(members) == 8 and [m.index for m in members] == list(range(8))
    assert {m.return_period_years for m in members} == {5, 100}
    assert sorted({m.factor for m in members}) == [0.7, 1.0, 1.3]
    assert [(m.seed, m.draw) for m in members if m.sigma > 0] == [(11, 0), (11, 1)] * 2


def test_members_on_two_worker_processes_equal_the_serial_members_bit_for_bit(
    members: list[Member],
    serial: dict[int, np.ndarray],
    distributed: tuple[dict[int, np.ndarray], set[int]],
) -> None:
    out, pids = distributed
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes, not this one
    assert sorted(out) == sorted(serial) == list(range(len(members)))
    for i, depth in serial.items():
        assert depth.dtype == out[i].dtype and depth.shape == out[i].shape
        assert np.array_equal(depth, out[i], equal_nan=True), f"member {i}"
        assert depth.tobytes() == out[i].tobytes()
    # The members differ (the perturbations do something), and water stood somewhere.
    assert max(float(np.nanmax(d)) for d in serial.values()) > 0.05
    assert len({d.tobytes() for d in serial.values()}) == len(serial)


def test_exceedance_from_the_cluster_equals_numpy_on_the_serial_members(
    serial: dict[int, np.ndarray], distributed: tuple[dict[int, np.ndarray], set[int]]
) -> None:
    from twin.sim.ensemble import exceedance

    out, _ = distributed
    got = exceedance([out[i] for i in sorted(out)])
    stack = np.stack([np.where(np.isnan(serial[i]), 0.0, serial[i]) for i in sorted(serial)])
    for k, t in enumerate((0.15, 0.30)):
        expected = np.count_nonzero(stack > t, axis=0) / len(serial)
        assert np.array_equal(got[k], expected)
    assert got[0].max() > 0  # some cell is deeper than 15 cm in some member


def test_a_scheduler_that_is_not_there_is_named() -> None:
    with (
        pytest.raises(ClusterError, match=r"tcp://127\.0\.0\.1:9"),
        open_client("tcp://127.0.0.1:9", connect_timeout_s=2),
    ):
        pass
