"""TNTP files: the published networks read whole, malformed files rejected with line numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.sim import tntp

NET_HEAD = """<NUMBER OF ZONES> 2
<NUMBER OF NODES> 3
<FIRST THRU NODE> 3
<NUMBER OF LINKS> 2
<END OF METADATA>

~ init term capacity length fft b power speed toll type ;
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_anaheim_reads_whole(traffic_data: Path) -> None:
    net = tntp.read_net(traffic_data / "Anaheim" / "Anaheim_net.tntp")
    assert (net.n_zones, net.n_nodes, net.n_links, net.first_thru) == (38, 416, 914, 38)
    # First data line: 1 117 9000 5280 1.090458488 0.15 4 4842 0 1
    assert (net.tail[0], net.head[0]) == (0, 116)
    assert net.capacity[0] == 9000 and net.length[0] == 5280
    assert net.fft[0] == pytest.approx(1.090458488) and net.beta[0] == 4
    trips = tntp.read_trips(traffic_data / "Anaheim" / "Anaheim_trips.tntp")
    assert trips.sum() == pytest.approx(104_694.40, abs=0.005)  # <TOTAL OD FLOW>
    assert trips[0, 1] == pytest.approx(1365.90) and trips[1, 0] == pytest.approx(1171.20)


def test_flow_files_round_trip(tmp_path: Path) -> None:
    net = tntp.read_net(
        _write(
            tmp_path, "n.tntp", NET_HEAD + "1 3 100 1 2 0.15 4 0 0 1 ;\n3 2 50 1 3 0.15 4 0 0 1 ;\n"
        )
    )
    path = tmp_path / "flow.tntp"
    tntp.write_flow(path, net, np.array([1.0 / 3, 7.0]), np.array([2.5, 3.25]))
    back = tntp.read_flow(path)
    assert back.tail.tolist() == [1, 3] and back.head.tolist() == [3, 2]
    assert back.volume.tolist() == [1.0 / 3, 7.0]  # written exactly, read exactly
    assert back.cost.tolist() == [2.5, 3.25]


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("1 3 100 1 2 0.15 4 0 0 1 ;\n3 9 50 1 3 0.15 4 0 0 1 ;\n", 9, "term_node 9 is not a node"),
        ("1 3 100 1 2 0.15 4 0 0 1 ;\n3 2 abc 1 3 0.15 4 0 0 1 ;\n", 9, "capacity is not a number"),
        ("1 3 100 1 2 0.15 4 0 0 1 ;\n3 2 0 1 3 0.15 4 0 0 1 ;\n", 9, "capacity must be > 0"),
        ("1 3 100 1 2 0.15 4 0 0 1 ;\n3 2 50 1 ;\n", 9, "at least 7 fields"),
        (
            "1 3 100 1 -2 0.15 4 0 0 1 ;\n3 2 50 1 3 0.15 4 0 0 1 ;\n",
            8,
            "free_flow_time must be >= 0",
        ),
        ("1 3 100 1 2 0.15 4 0 0 1 ;\n", 8, "says 2 but the file has 1"),
    ],
)
def test_malformed_networks_name_the_line(
    tmp_path: Path, body: str, line: int, message: str
) -> None:
    path = _write(tmp_path, "bad_net.tntp", NET_HEAD + body)
    with pytest.raises(tntp.TNTPError, match=message) as err:
        tntp.read_net(path)
    assert err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}:")


def test_missing_metadata_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "n.tntp", "<NUMBER OF ZONES> 2\n<END OF METADATA>\n")
    with pytest.raises(tntp.TNTPError, match="NUMBER OF NODES"):
        tntp.read_net(path)
    with pytest.raises(tntp.TNTPError, match="no <END OF METADATA>"):
        tntp.read_net(_write(tmp_path, "m.tntp", "<NUMBER OF ZONES> 2\n"))
    with pytest.raises(tntp.TNTPError, match="cannot read"):
        tntp.read_net(tmp_path / "absent.tntp")


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("Origin 1\n 2 : 5.0; 3 : 1.0;\n", 5, "destination 3 is not a zone"),
        ("Origin 1\n 2 : x;\n", 5, "trips is not a number"),
        ("Origin 1\n 2 : -1;\n", 5, "trips must be >= 0"),
        ("Origin 7\n 2 : 1;\n", 4, "origin 7 is not a zone"),
        (" 2 : 1;\n", 4, "before the first 'Origin'"),
        ("Origin 1\n 2 = 1;\n", 5, "expected 'zone : trips'"),
    ],
)
def test_malformed_trips_name_the_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = _write(tmp_path, "t.tntp", "<NUMBER OF ZONES> 2\n<END OF METADATA>\n\n" + body)
    with pytest.raises(tntp.TNTPError, match=message) as err:
        tntp.read_trips(path)
    assert err.value.line == line


def test_trips_must_fit_the_network(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.tntp", "<NUMBER OF ZONES> 2\n<END OF METADATA>\nOrigin 1\n2 : 4;\n")
    assert tntp.read_trips(path).tolist() == [[0, 4], [0, 0]]
    with pytest.raises(tntp.TNTPError, match="2 zones, but the network has 3"):
        tntp.read_trips(path, n_zones=3)


def test_cli_runs_anaheim_and_writes_flows(traffic_data: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from twin.cli import app

    folder = traffic_data / "Anaheim"
    out = tmp_path / "flows.tntp"
    args = ["traffic", "run", "--net", str(folder / "Anaheim_net.tntp"), "--trips",
            str(folder / "Anaheim_trips.tntp"), "--gap", "1e-6", "--out", str(out), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["relative_gap"] <= 1e-6 and data["converged"]
    # The bar at gap 1e-6 (at 1e-5 Anaheim's TSTT still moves by a few 1e-4).
    assert data["tstt"] == pytest.approx(1_419_913.85, rel=1e-5)
    assert len(data["history"]) == data["iterations"] + 1
    assert data["history"][-1]["gap_exact"]  # the stop was decided on the exact gap
    assert tntp.read_flow(out).volume.shape == (914,)


def test_cli_names_the_bad_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twin.cli import app

    net = _write(tmp_path, "n.tntp", NET_HEAD + "1 3 100 1 2 0.15 4 0 0 1 ;\n3 2 x 1 3 0.15 4 ;\n")
    trips = _write(tmp_path, "t.tntp", "<NUMBER OF ZONES> 2\n<END OF METADATA>\nOrigin 1\n2 : 4;\n")
    result = CliRunner().invoke(app, ["traffic", "run", "--net", str(net), "--trips", str(trips)])
    assert result.exit_code == 2
    assert f"{net}:9: capacity is not a number" in result.output


def test_cli_cost_weights_move_the_equilibrium(tmp_path: Path) -> None:
    """Two parallel routes with constant costs (b = 0), zone 1 to zone 2 via node 3 or 4:
    route A costs 10 min and a 100-cent toll, route B 15 min and no toll. By hand: without a
    toll weight everyone takes A; at 0.1 min/cent A costs 20 min, so everyone takes B; adding
    0.2 min per length unit on B's 30 units makes B 21 min, and everyone is back on A."""
    import json

    from typer.testing import CliRunner

    from twin.cli import app

    net = _write(
        tmp_path,
        "n.tntp",
        """<NUMBER OF ZONES> 2
<NUMBER OF NODES> 4
<FIRST THRU NODE> 3
<NUMBER OF LINKS> 4
<END OF METADATA>

~ init term capacity length fft b power speed toll type ;
1 3 100 0 10 0 4 0 100 1 ;
3 2 100 0 0 0 4 0 0 1 ;
1 4 100 30 15 0 4 0 0 1 ;
4 2 100 0 0 0 4 0 0 1 ;
""",
    )
    trips = _write(
        tmp_path, "t.tntp", "<NUMBER OF ZONES> 2\n<END OF METADATA>\nOrigin 1\n2 : 50;\n"
    )
    base = ["traffic", "run", "--net", str(net), "--trips", str(trips), "--json"]

    def run(*extra: str) -> dict:  # type: ignore[type-arg]
        out = tmp_path / "f.tntp"
        r = CliRunner().invoke(app, [*base, "--out", str(out), *extra])
        assert r.exit_code == 0, r.output
        data = json.loads(r.stdout)
        data["flow"] = tntp.read_flow(out).volume.tolist()
        return data

    plain = run()
    assert plain["flow"] == pytest.approx([50, 50, 0, 0])
    assert any("tolls but no <TOLL FACTOR>" in w for w in plain["warnings"])
    tolled = run("--toll-factor", "0.1")
    assert tolled["flow"] == pytest.approx([0, 0, 50, 50]) and tolled["warnings"] == []
    both = run("--toll-factor", "0.1", "--distance-factor", "0.2")
    assert both["flow"] == pytest.approx([50, 50, 0, 0]) and both["distance_factor"] == 0.2
    r = CliRunner().invoke(app, [*base, "--toll-factor", "-1"])
    assert r.exit_code == 2 and "--toll-factor must be a number >= 0" in r.output


def test_cli_threads_gives_the_same_equilibrium_and_refuses_too_many(
    traffic_data: Path,
) -> None:
    import json

    import numba
    from typer.testing import CliRunner

    from twin.cli import app

    folder = traffic_data / "Anaheim"
    args = ["traffic", "run", "--net", str(folder / "Anaheim_net.tntp"), "--trips",
            str(folder / "Anaheim_trips.tntp"), "--gap", "1e-6", "--json"]  # fmt: skip
    most = numba.config.NUMBA_NUM_THREADS
    if most >= 2:
        result = CliRunner().invoke(app, [*args, "--threads", "2"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["converged"] and data["tstt"] == pytest.approx(1_419_913.85, rel=1e-5)
    result = CliRunner().invoke(app, [*args, "--threads", str(most + 1)])
    assert result.exit_code == 2
    assert "--threads must be from 1 to NUMBA_NUM_THREADS" in result.output
