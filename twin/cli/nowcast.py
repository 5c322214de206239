"""``twin nowcast ...``: the rolling flood nowcast (``step``, every few minutes) and where it
stands (``status``). The work is in :mod:`twin.runs.nowcast`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from twin import durations
from twin.cli.support import JsonOpt, emit, fail, load_settings, parse_as_of

nowcast_app = typer.Typer(
    help="The rolling flood nowcast: advance the flood state with the rain the gauges saw, "
    "look an hour ahead.",
    no_args_is_help=True,
)


def _seconds(text: str, option: str) -> float:
    try:
        return durations.parse_duration(text, bare_seconds=True).total_seconds()
    except ValueError as exc:
        fail(f"{option}: {exc}", 2)


@nowcast_app.command("step")
def step(
    window: Annotated[
        str,
        typer.Option(
            help="Window of a first step (later steps cover the time since the previous one)."
        ),
    ] = "5m",
    horizon: Annotated[str, typer.Option(help="How far ahead the forecast looks.")] = "60m",
    as_of: Annotated[
        str | None, typer.Option(help="End of the window, ISO 8601 with a zone (default now).")
    ] = None,
    lookback: Annotated[
        str, typer.Option(help="Persistence: the gauges' mean over this holds over the horizon.")
    ] = "1h",
    max_age: Annotated[
        str, typer.Option(help="Gauges whose latest reading is older are stale (dropped).")
    ] = "15m",
    power: Annotated[float, typer.Option(min=0.1, help="Inverse-distance power.")] = 2.0,
    if_no_gauges: Annotated[
        str, typer.Option(help="error, or zero: step with no rain when no gauge is fresh.")
    ] = "error",
    restart: Annotated[bool, typer.Option(help="Start again from a dry grid.")] = False,
    dtype: Annotated[str, typer.Option(help="float64 or float32.")] = "float64",
    as_json: JsonOpt = False,
) -> None:
    """Advance the nowcast to --as-of with the gauges' rain and store the depth now and at the
    horizon per cell and road, and water-level skill."""
    from twin.runs.nowcast import NowcastError, NowcastParams
    from twin.runs.nowcast import step as run_step

    at = parse_as_of(as_of)
    try:
        params = NowcastParams(
            window_s=_seconds(window, "--window"), horizon_s=_seconds(horizon, "--horizon"),
            lookback_s=_seconds(lookback, "--lookback"), max_age_s=_seconds(max_age, "--max-age"),
            power=power, if_no_gauges=if_no_gauges, dtype=dtype, restart=restart,  # type: ignore[arg-type]
        )  # fmt: skip
        summary = run_step(load_settings(), params, as_of=at)
    except NowcastError as exc:
        fail(str(exc), 2)
    g = summary["gauges"]
    human = (
        f"nowcast {summary['nowcast_id']} step {summary['step_id']} at {summary['as_of']}"
        f" ({summary['window_s']:g} s{', ' + summary['restarted'] if summary['restarted'] else ''})"
        f": {len(g['used'])} gauges ({len(g['stale'])} stale), rain mean"
        f" {summary['rain_mean_mm_h']:.1f} mm/h; deepest {summary['max_depth_now_m']:.2f} m now,"
        f" {summary['max_depth_horizon_m']:.2f} m in {summary['horizon_s'] / 60:g} min;"
        f" {summary['cells']} cell rows, {summary['links']} roads"
    )
    emit(summary, as_json, human)


@nowcast_app.command("status")
def status(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Steps to show.")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """The latest nowcast: its clock, its state and its latest steps."""
    from twin.runs.nowcast import status as read_status

    out: dict[str, Any] = read_status(load_settings(), limit=limit)
    if not out:
        emit({}, as_json, "no nowcast yet: run `twin nowcast step`")
        return
    lines = [f"nowcast {out['nowcast_id']}: {out['steps']} steps since {out['origin']},"
             f" state as of {out['as_of']} ({out['state_bytes']} bytes)"]  # fmt: skip
    for s in out["latest_steps"]:
        lines.append(
            f"  {s['as_of']}: {len(s['gauges_used'])} gauges, rain {s['rain_mean_mm_h']:.1f}"
            f" mm/h, deepest {s['max_depth_now_m']:.2f} m now,"
            f" {s['max_depth_horizon_m']:.2f} m ahead"
        )
    emit(out, as_json, "\n".join(lines))
