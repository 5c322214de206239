"""``twin flood run`` (raw files) and ``twin simulate ...`` (on the twin)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from twin.cli.support import JsonOpt, emit, fail, load_settings
from twin.settings import Settings

flood_app = typer.Typer(help="Flood model runs on raw files (no database).", no_args_is_help=True)
simulate_app = typer.Typer(help="Simulations on the twin's data.", no_args_is_help=True)
traffic_app = typer.Typer(
    help="Traffic assignment on TNTP files (no database).", no_args_is_help=True
)


@flood_app.command("run")
def flood_run(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML (format in the README).")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the outputs.")],
    as_json: JsonOpt = False,
) -> None:
    """Run a flood scenario: max depth / time-of-max / velocity / hazard GeoTIFFs, probes CSV
    and summary.json in OUT."""
    from twin.runs import scenario as sc

    try:
        loaded = sc.load(scenario)
    except sc.ScenarioError as exc:
        fail(str(exc), code=2)
    with _progress_bar(as_json, "flood model") as show:
        result = sc.run(loaded, progress=lambda t, total: show(t / total))
    data = sc.write_outputs(loaded, result, out)
    v = data["volumes_m3"]
    emit(
        data,
        as_json,
        f"{data['steps']} steps in {data['wall_s']:.1f} s "
        f"({data['cell_steps_per_s'] / 1e6:.1f} M cell-steps/s); max depth "
        f"{data['max_depth_m']:.3f} m; rain {v['rain']:.1f} m³, outflow {v['outflow']:.1f} m³, "
        f"stored {v['stored']:.1f} m³, mass error {data['mass_error_rel']:.2e}; outputs in {out}",
    )


@traffic_app.command("run")
def traffic_run(
    net: Annotated[Path, typer.Option("--net", help="TNTP network (_net.tntp).")],
    trips: Annotated[Path, typer.Option("--trips", help="TNTP demand (_trips.tntp).")],
    gap: Annotated[float, typer.Option(help="Target relative gap (TSTT - SPTT) / TSTT.")] = 1e-6,
    max_iter: Annotated[int, typer.Option(help="Iteration cap.")] = 500,
    out: Annotated[Path | None, typer.Option(help="Write link flows here (_flow.tntp).")] = None,
    full_sweeps: Annotated[
        bool,
        typer.Option(
            "--full-sweeps",
            help="Equilibrate every bush each iteration: slower, flows on uncongested links "
            "settle closer to the reference at a given gap.",
        ),
    ] = False,
    toll_factor: Annotated[
        float | None,
        typer.Option(
            help="Minutes per toll unit in the generalised cost (default: the file's "
            "<TOLL FACTOR>, else 0)."
        ),
    ] = None,
    distance_factor: Annotated[
        float | None,
        typer.Option(
            help="Minutes per length unit in the generalised cost (default: the file's "
            "<DISTANCE FACTOR>, else 0). Many networks give theirs in a README only, "
            "e.g. Chicago Sketch: --toll-factor 0.02 --distance-factor 0.04."
        ),
    ] = None,
    threads: Annotated[
        int,
        typer.Option(
            help="Threads (at most NUMBA_NUM_THREADS): the all-or-nothing start, bush growth "
            "and the gap's path totals run on groups of origins side by side; repeatable for "
            "a given number."
        ),
    ] = 1,
    as_json: JsonOpt = False,
) -> None:
    """User equilibrium (Algorithm B, BPR costs) on a TNTP network: prints TSTT, Beckmann
    objective, relative gap, iterations and seconds."""
    from twin.sim import tntp
    from twin.sim.traffic import assign

    if not gap > 0 or max_iter < 1:
        fail("--gap must be > 0 and --max-iter >= 1", code=2)
    from twin.sim.threads import most_threads

    most = most_threads()
    if not 1 <= threads <= most:
        fail(f"--threads must be from 1 to NUMBA_NUM_THREADS ({most}), not {threads}", code=2)
    try:
        network = tntp.read_net(net)
        for flag, value in (("--toll-factor", toll_factor), ("--distance-factor", distance_factor)):
            if value is not None and not (value >= 0 and np.isfinite(value)):
                fail(f"{flag} must be a number >= 0", code=2)
        if toll_factor is not None:
            network = dataclasses.replace(network, toll_factor=toll_factor)
        if distance_factor is not None:
            network = dataclasses.replace(network, distance_factor=distance_factor)
        demand = tntp.read_trips(trips, n_zones=network.n_zones)
    except tntp.TNTPError as exc:
        fail(str(exc), code=2)
    with _progress_bar(as_json, "assignment (log10 gap)") as show:
        # Progress as the share of the way from gap 1 down to the target, in log10.
        span = max(-np.log10(gap), 1e-9)
        result = assign(
            network,
            demand,
            gap=gap,
            max_iter=max_iter,
            full_sweeps=full_sweeps,
            threads=threads,
            on_iteration=lambda r: show(min(1.0, -np.log10(max(r.gap, 1e-300)) / span)),
        )
    if out is not None:
        tntp.write_flow(out, network, result.flow, result.cost)
    warnings = _cost_warnings(network, toll_factor)
    data = {
        "tstt": result.tstt,
        "objective": result.objective,
        "relative_gap": result.gap,
        "iterations": result.iterations,
        "converged": result.converged,
        "seconds": round(result.seconds, 4),
        "assigned_demand": result.assigned_demand,
        "unreachable_demand": result.unreachable_demand,
        "unreachable": [
            {"origin": u.origin + 1, "destination": u.destination + 1, "demand": u.demand}
            for u in result.unreachable
        ],
        "history": [
            {
                "iteration": h.iteration,
                "gap": h.gap,
                "gap_exact": h.exact,  # False: a lower bound (the exact check was skipped)
                "objective": h.objective,
                "tstt": h.tstt,
                "seconds": round(h.seconds, 4),
            }
            for h in result.history
        ],
        "flows": str(out) if out else None,
        "toll_factor": network.toll_factor,
        "distance_factor": network.distance_factor,
        "warnings": warnings,
    }
    for w in warnings:
        typer.secho(f"warning: {w}", fg=typer.colors.YELLOW, err=True)
    lost = (
        f"; {len(result.unreachable)} OD pairs unreachable ({result.unreachable_demand:.1f} trips)"
        if result.unreachable
        else ""
    )
    emit(
        data,
        as_json,
        f"TSTT {result.tstt:,.2f}, objective {result.objective:,.3f}, relative gap "
        f"{result.gap:.2e} after {result.iterations} iterations in {result.seconds:.3f} s"
        + ("" if result.converged else " (iteration cap reached)")
        + lost
        + (f"; flows in {out}" if out else ""),
    )


def _cost_warnings(network: Any, toll_factor: float | None) -> list[str]:
    """A network with tolls whose file names no weight for them: its published solutions may
    use a weight given in its documentation (Chicago Sketch's README: 0.02 min/cent, and
    0.04 min/mile for distance), and without it the equilibrium is a different one."""
    if toll_factor is None and network.toll_factor == 0 and network.toll.any():
        return [
            "the network has tolls but no <TOLL FACTOR>: costs ignore them (pass "
            "--toll-factor, and --distance-factor, if its documentation gives them)"
        ]
    return []


@contextmanager
def _progress_bar(as_json: bool, label: str) -> Iterator[Callable[[float], None]]:
    """A progress bar on stderr taking a fraction 0..1 (silent with --json)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(label), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), disable=as_json) as bar:
        task = bar.add_task(label, total=1.0)
        yield lambda fraction: bar.update(task, completed=fraction)


NoRiskOpt = Annotated[
    bool,
    typer.Option(
        "--no-risk", help="Do not recompute the risk one map and the alerts after the run."
    ),
]


def _refresh(settings: Settings, skip: bool) -> dict[str, Any] | None:
    """Recompute the one map and evaluate the alerts on the new results (unless skipped)."""
    if skip:
        return None
    from twin.alerts.refresh import refresh_quietly

    return refresh_quietly(settings)


@simulate_app.command("flood")
def simulate_flood(
    storm: Annotated[str, typer.Option(help="Design storm: chicago.")] = "chicago",
    return_period: Annotated[float, typer.Option(help="Return period (years).")] = 50.0,
    duration: Annotated[str, typer.Option(help="Storm duration: 2h, 90min, 3600s.")] = "2h",
    after: Annotated[str, typer.Option(help="Simulated time after the rain stops.")] = "30min",
    rain_series: Annotated[
        Path | None, typer.Option(help="CSV time_s,intensity_mm_h instead of a design storm.")
    ] = None,
    dtype: Annotated[str, typer.Option(help="float64 or float32.")] = "float64",
    ensemble: Annotated[
        Path | None,
        typer.Option(
            help="Ensemble YAML (return periods x durations x rain perturbations): run every "
            "member on a Dask cluster and store exceedance probabilities (docs/scale-out.md); "
            "the storm options above are then ignored."
        ),
    ] = None,
    scheduler: Annotated[
        str,
        typer.Option(
            help="With --ensemble: 'local' (a LocalCluster of worker processes), a scheduler "
            "address (tcp://host:8786) or 'serial' (no Dask)."
        ),
    ] = "local",
    workers: Annotated[
        int | None, typer.Option(help="With --ensemble --scheduler local: worker processes.")
    ] = None,
    no_risk: NoRiskOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a storm on the twin (DEM, raised buildings, roughness from land use, drainage
    capacity) and store the run and its per-cell, road and building results; with --ensemble,
    many storms on a Dask cluster and the probability of deep water per cell and road."""
    from twin.runs import flood as flood_runs

    settings = load_settings()
    if ensemble is not None:
        if rain_series is not None:
            fail("--ensemble and --rain-series: give one of them", code=2)
        _simulate_ensemble(settings, ensemble, scheduler, workers, no_risk, as_json)
        return
    try:
        params = flood_runs.FloodParams(
            storm=storm,
            return_period_years=return_period,
            duration_s=flood_runs.parse_duration(duration),
            after_s=flood_runs.parse_duration(after),
            rain_series=flood_runs.read_rain_series(rain_series) if rain_series else None,
            dtype=dtype,
        )
        with _progress_bar(as_json, "storm (flood model)") as show:
            summary = flood_runs.run_flood(settings, params, progress=show)
    except flood_runs.FloodRunError as exc:
        fail(str(exc), code=2)
    summary["risk"] = _refresh(settings, no_risk)
    emit(
        summary,
        as_json,
        f"run {summary['run_id']}: max depth {summary['max_depth_m']:.2f} m, "
        f"{summary['flooded_cells']} cells flooded, {summary['closed_links']} road links closed, "
        f"{summary['affected_buildings']} buildings affected, "
        f"mass error {summary['mass_error_rel']:.1e}, {summary['wall_s']:.1f} s",
    )


def _simulate_ensemble(
    settings: Settings,
    spec_path: Path,
    scheduler: str,
    workers: int | None,
    no_risk: bool,
    as_json: bool,
) -> None:
    from twin.runs import ensemble_cluster, ensemblespec
    from twin.runs import flood as flood_runs
    from twin.runs.ensemble import EnsembleParams, run_ensemble

    if workers is not None and workers < 1:
        fail("--workers must be >= 1", code=2)
    try:
        params = EnsembleParams(ensemblespec.load(spec_path), scheduler=scheduler, workers=workers)
        with _progress_bar(as_json, "ensemble members") as show:
            summary = run_ensemble(settings, params, progress=show)
    except (ensemblespec.EnsembleSpecError, flood_runs.FloodRunError) as exc:
        fail(str(exc), code=2)
    except ensemble_cluster.ClusterError as exc:
        fail(str(exc), code=1)
    summary["risk"] = _refresh(settings, no_risk)
    emit(
        summary,
        as_json,
        f"run {summary['run_id']}: {summary['n_members']} members on {scheduler}, "
        f"{summary['cells_p15_half']} cells and {summary['links_p15_half']} road links deeper "
        f"than 15 cm in at least half of them; members {summary['members_wall_s']:.1f} s wall, "
        f"{summary['members_cpu_s']:.1f} s summed",
    )


@simulate_app.command("traffic")
def simulate_traffic(
    period: Annotated[str, typer.Option(help="am_peak (home -> work) or pm_peak.")] = "am_peak",
    closures: Annotated[
        list[str] | None, typer.Option(help="flood:RUN_ID: close the run's flooded roads.")
    ] = None,
    close_links: Annotated[str, typer.Option(help="Road link ids to close, comma separated.")] = "",
    no_events: Annotated[
        bool, typer.Option("--no-events", help="Ignore open road_closure events.")
    ] = False,
    peak_share: Annotated[
        float, typer.Option(help="Share of commuters driving in the peak hour.")
    ] = 0.3,
    target_trip_min: Annotated[
        float | None, typer.Option(help="Mean trip time (min) the gravity model reproduces.")
    ] = None,
    zone_res: Annotated[int, typer.Option(help="H3 resolution of the zones.")] = 8,
    gap: Annotated[float, typer.Option(help="Target relative gap.")] = 1e-5,
    max_iter: Annotated[int, typer.Option(help="Iteration cap.")] = 300,
    no_risk: NoRiskOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Assign the peak hour on the twin's roads (demand from residents and jobs) with closures
    from flood runs, road_closure events and explicit links; stores the run, its baseline and
    per-link and per-cell results."""
    from twin.runs import traffic as traffic_runs

    settings = load_settings()
    try:
        params = traffic_runs.TrafficParams(
            period=period,
            peak_share=peak_share,
            zone_res=zone_res,
            target_trip_min=target_trip_min,
            flood_runs=traffic_runs.parse_closures(closures or []),
            close_links=traffic_runs.parse_link_ids(close_links),
            events=not no_events,
            gap=gap,
            max_iter=max_iter,
        )
        with _progress_bar(as_json, "traffic assignment") as show:
            summary = traffic_runs.run_traffic(settings, params, progress=show)
    except traffic_runs.TrafficRunError as exc:
        fail(str(exc), code=2)
    summary["risk"] = _refresh(settings, no_risk)
    text = (
        f"run {summary['run_id']}: {summary['trips']:,.0f} trips, delay index "
        f"{summary['delay_index']:.3f} ({summary['delay_band']}), "
        f"{summary['tstt_veh_h']:,.1f} veh-h, gap {summary['relative_gap']:.1e} after "
        f"{summary['iterations']} iterations"
    )
    if "baseline" in summary:
        b, c = summary["baseline"], summary["change"]
        text += (
            f"; {summary['closed_links']} links closed, {summary['slowed_links']} slowed: "
            f"baseline run {b['run_id']} {b['delay_index']:.3f}, {c['tstt_veh_h']:+,.1f} veh-h "
            f"({c['tstt_pct']:+.1f}%)"
        )
    if summary["unreachable_trips"]:
        text += f"; {summary['unreachable_trips']:,.1f} trips cut off (see --json)"
    emit(summary, as_json, text)
