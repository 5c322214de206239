"""``twin sense ...``: the MQTT bridge of the SensorThings API (``run``) and where sensing
stands (``status``): datastreams, readings, the latest one, and whether the broker answers.

``partitions`` shows (and with ``--ensure`` / ``--detach`` maintains) the daily partitions of
``twin.observation``; ``rollups`` brings the roll-ups of readings up to date.

``twin serve`` also runs the bridge, in the API process, when ``TWIN_MQTT_URL`` is set; run
``twin sense run`` instead when the API runs with several workers or elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, date, datetime
from typing import Annotated, Any

import psycopg
import typer

from twin.cli.support import JsonOpt, emit, fail, load_settings
from twin.db.engine import DatabaseNotConfiguredError, database_url

sense_app = typer.Typer(help="Sensor data in: the MQTT bridge and its status.",
                        no_args_is_help=True)  # fmt: skip
MqttOpt = Annotated[
    str | None,
    typer.Option("--mqtt-url", help="Broker, e.g. mqtt://127.0.0.1:1883 (TWIN_MQTT_URL)."),
]


def _db_url() -> str:
    try:
        return database_url(load_settings())
    except DatabaseNotConfiguredError as exc:
        fail(str(exc))


@sense_app.command("run")
def run(
    mqtt_url: MqttOpt = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="Public URL of the API (selfLinks); default from TWIN_HOST/PORT."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Readings per insert.")
    ] = 2000,
    publish: Annotated[
        bool, typer.Option(help="Publish stored Observations back to MQTT subscribers.")
    ] = True,
) -> None:
    """Run the bridge until interrupted: store Observations published to
    v1.1/Datastreams(<id>)/Observations and publish the stored ones back."""
    from twin.sense.bridge import Bridge, parse_mqtt_url
    from twin.sense.maintain import Maintainer

    settings = load_settings()
    url = mqtt_url or settings.mqtt_url
    if not url:
        fail("no broker: set TWIN_MQTT_URL or pass --mqtt-url mqtt://host:port", 2)
    try:
        parse_mqtt_url(url)
    except ValueError as exc:
        fail(str(exc), 2)
    base = base_url or f"http://{settings.host}:{settings.port}/sta/v1.1"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    bridge = Bridge(url, _db_url(), base=base, selects=settings.mqtt_selects,
                    batch_size=batch_size, publish_back=publish,
                    future_tolerance_s=settings.sense_future_tolerance_s)  # fmt: skip
    maintainer = Maintainer(_db_url(), settings)
    typer.echo(f"bridge: {url} -> PostGIS; Ctrl-C stops")

    async def both() -> None:
        tasks = [bridge.run()]
        if settings.sense_maintenance_interval_s > 0:
            tasks.append(maintainer.run())
        await asyncio.gather(*tasks)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(both())
    typer.echo(json.dumps({**bridge.stats.as_dict(), "maintenance": maintainer.stats}))


async def _broker_answers(url: str) -> str:
    from twin.sense.bridge import client_for, parse_mqtt_url

    try:
        async with client_for(parse_mqtt_url(url)):
            return "reachable"
    except Exception as exc:
        return f"unreachable: {exc}"


@sense_app.command("status")
def status(mqtt_url: MqttOpt = None, as_json: JsonOpt = False) -> None:
    """Datastreams, readings (all, from the roll-ups, and in the last hour), the latest
    reading, the broker."""
    from twin.sense.rollups import refresh_all

    settings = load_settings()
    with psycopg.connect(_db_url(), autocommit=True) as conn:
        # Counted from the hourly roll-ups (brought up to date first), not the raw readings.
        refresh_all(conn, res=settings.sense_rollup_resolution)
        row = conn.execute(
            "SELECT (SELECT count(*) FROM twin.sensor), (SELECT count(*) FROM twin.sta_thing),"
            " (SELECT coalesce(sum(n), 0) FROM twin.observation_1h),"
            " (SELECT count(*) FROM twin.observation"
            "  WHERE observed_at > now() - interval '1 hour'),"
            " (SELECT max(observed_at) FROM twin.observation)"
        ).fetchone()
        by_reason = conn.execute(
            "SELECT reason, count(*) FROM twin.sense_dead_letter GROUP BY reason ORDER BY 2 DESC"
        ).fetchall()
        latest = conn.execute(
            "SELECT received_at, topic, reason FROM twin.sense_dead_letter ORDER BY id DESC LIMIT 5"
        ).fetchall()
    assert row is not None
    url = mqtt_url or settings.mqtt_url
    result: dict[str, Any] = {
        "datastreams": row[0], "things": row[1], "observations": row[2],
        "observations_last_hour": row[3], "latest": row[4].isoformat() if row[4] else None,
        "rejects": {r: n for r, n in by_reason},
        "latest_rejects": [f"{t.isoformat()} {topic}: {r}" for t, topic, r in latest],
        "mqtt_url": url, "broker": asyncio.run(_broker_answers(url)) if url else "not configured",
    }  # fmt: skip
    human = "\n".join(f"{k:>24}: {v}" for k, v in result.items())
    emit(result, as_json, human)


TodayOpt = Annotated[
    str | None,
    typer.Option("--today", help="The day to act as of (YYYY-MM-DD, UTC); default: today."),
]


def _today(value: str | None) -> date:
    if value is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"--today: expected YYYY-MM-DD, got {value!r}", 2)


@sense_app.command("partitions")
def partitions_cmd(
    ensure: Annotated[
        bool, typer.Option("--ensure", help="Make the partitions of [today - 1, today + ahead].")
    ] = False,
    detach: Annotated[
        bool, typer.Option("--detach", help="Detach the partitions older than the retention.")
    ] = False,
    drop: Annotated[
        bool, typer.Option("--drop", help="With --detach: drop them (TWIN_SENSE_DROP_DETACHED).")
    ] = False,
    ahead: Annotated[
        int | None,
        typer.Option(min=0, max=366, help="Days ahead (TWIN_SENSE_PARTITIONS_AHEAD_DAYS)."),
    ] = None,
    retention: Annotated[
        int | None, typer.Option(min=1, help="Days kept (TWIN_SENSE_RETENTION_DAYS).")
    ] = None,
    today: TodayOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The daily partitions of twin.observation (rows are the planner's estimates), after
    making those ahead (--ensure) and detaching those past the retention (--detach)."""
    from twin.sense import partitions

    settings = load_settings()
    day = _today(today)
    keep = retention or settings.sense_retention_days
    result: dict[str, Any] = {"today": day.isoformat()}
    with psycopg.connect(_db_url(), autocommit=True) as conn:
        if ensure:
            result["made"] = partitions.ensure(
                conn, today=day, ahead_days=settings.sense_partitions_ahead_days
                if ahead is None else ahead, retention_days=keep,
            )  # fmt: skip
        if detach:
            result["detached"] = partitions.detach(
                conn, today=day, retention_days=keep, drop=drop or settings.sense_drop_detached
            )
        result["partitions"] = [p.as_dict() for p in partitions.partitions(conn)]
    lines = [f"{k}: {v}" for k, v in result.items() if k != "partitions"]
    lines += [f"{p['name']:<28} {p['state']:<9} rows~{p['rows_estimate']} bytes={p['bytes']}"
              for p in result["partitions"]]  # fmt: skip
    emit(result, as_json, "\n".join(lines))


@sense_app.command("rollups")
def rollups_cmd(as_json: JsonOpt = False) -> None:
    """Bring the 5-minute and hourly roll-ups of readings up to date (the queued hours)."""
    from twin.sense.rollups import refresh_all

    settings = load_settings()
    with psycopg.connect(_db_url(), autocommit=True) as conn:
        got = refresh_all(conn, res=settings.sense_rollup_resolution)
    result = got.as_dict()
    emit(result, as_json, "\n".join(f"{k:>14}: {v}" for k, v in result.items()))
