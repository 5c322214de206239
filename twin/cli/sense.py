"""``twin sense ...``: the MQTT bridge of the SensorThings API (``run``) and where sensing
stands (``status``): datastreams, readings, the latest one, and whether the broker answers.

``twin serve`` also runs the bridge, in the API process, when ``TWIN_MQTT_URL`` is set; run
``twin sense run`` instead when the API runs with several workers or elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
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
                    future_tolerance_s=settings.sense_future_tolerance_s,
                    client_id=settings.mqtt_client_id,
                    session_expiry_s=settings.mqtt_session_expiry_s)  # fmt: skip
    typer.echo(f"bridge: {url} -> PostGIS; Ctrl-C stops")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(bridge.run())
    typer.echo(json.dumps(bridge.stats.as_dict()))


async def _broker_answers(url: str) -> str:
    from twin.sense.bridge import client_for, parse_mqtt_url

    try:
        async with client_for(parse_mqtt_url(url)):
            return "reachable"
    except Exception as exc:
        return f"unreachable: {exc}"


def _by_reason(rows: list[tuple[str, str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, reason, n in rows:
        out[reason] = out.get(reason, 0) + n
    return out


@sense_app.command("status")
def status(mqtt_url: MqttOpt = None, as_json: JsonOpt = False) -> None:
    """Datastreams, readings (all and in the last hour), the latest reading, refused
    readings (dead letters) by reason and by source (mqtt, http), the broker."""
    settings = load_settings()
    with psycopg.connect(_db_url()) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM twin.sensor), (SELECT count(*) FROM twin.sta_thing),"
            " (SELECT count(*) FROM twin.observation),"
            " (SELECT count(*) FROM twin.observation"
            "  WHERE observed_at > now() - interval '1 hour'),"
            " (SELECT max(observed_at) FROM twin.observation)"
        ).fetchone()
        by_source = conn.execute(
            "SELECT source, reason, count(*) FROM twin.sense_dead_letter GROUP BY source, reason"
            " ORDER BY 3 DESC, 1, 2"
        ).fetchall()
        latest = conn.execute(
            "SELECT received_at, topic, reason FROM twin.sense_dead_letter ORDER BY id DESC LIMIT 5"
        ).fetchall()
    assert row is not None
    url = mqtt_url or settings.mqtt_url
    result: dict[str, Any] = {
        "datastreams": row[0], "things": row[1], "observations": row[2],
        "observations_last_hour": row[3], "latest": row[4].isoformat() if row[4] else None,
        "rejects": _by_reason(by_source),
        "rejects_by_source": {src: {r: n for s, r, n in by_source if s == src}
                              for src in sorted({s for s, _, _ in by_source})},
        "latest_rejects": [f"{t.isoformat()} {topic}: {r}" for t, topic, r in latest],
        "mqtt_url": url, "broker": asyncio.run(_broker_answers(url)) if url else "not configured",
    }  # fmt: skip
    human = "\n".join(f"{k:>24}: {v}" for k, v in result.items())
    emit(result, as_json, human)
