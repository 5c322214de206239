"""``twin sense ...``: the MQTT bridge of the SensorThings API (``run``), where sensing
stands (``status``: datastreams, readings, the latest one, whether the broker answers), the
devices that may write (``device add | list | grant | password | delete``), the broker's
password and ACL files that hold them to their own datastreams (``acl``) and a Datastream's
physical range (``range``).

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
import multiprocessing
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import psycopg
import typer

from twin.access.tokens import AuthError
from twin.cli.support import JsonOpt, emit, fail, load_settings
from twin.db.engine import DatabaseNotConfiguredError, database_url
from twin.errors import InvalidParameterError, NotFoundError

sense_app = typer.Typer(help="Sensor data in: the MQTT bridge and its status.",
                        no_args_is_help=True)  # fmt: skip
device_app = typer.Typer(help="Devices and gateways: their tokens, MQTT passwords and datastreams.",
                         no_args_is_help=True)  # fmt: skip
sense_app.add_typer(device_app, name="device")
T = TypeVar("T")
SHARE_GROUP = "twin"  # $share/twin/v1.1/+/Observations for twin sense run --workers N
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
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Bridge processes on one MQTT 5 shared subscription (more than 1 needs "
            "--no-publish).",
        ),
    ] = 1,
) -> None:
    """Run the bridge until interrupted: store Observations published to
    v1.1/Datastreams(<id>)/Observations and publish the stored ones back; with
    TWIN_LIVE_ALERTS, evaluate the sensor rules as readings arrive and, every
    TWIN_NOWCAST_EVERY_S seconds while rain gauges read, run a nowcast step.

    With --workers N, N bridges (this process and N - 1 more) share the subscription
    $share/twin/v1.1/+/Observations, each with the client id TWIN_MQTT_CLIENT_ID-k and its
    own persistent session; the rules and the nowcast run here, on the readings of this
    process's share."""
    from twin.sense.bridge import Bridge, parse_mqtt_url, running
    from twin.sense.maintain import Maintainer

    settings = load_settings()
    url = mqtt_url or settings.mqtt_url
    if not url:
        fail("no broker: set TWIN_MQTT_URL or pass --mqtt-url mqtt://host:port", 2)
    try:
        parse_mqtt_url(url)
    except ValueError as exc:
        fail(str(exc), 2)
    if workers > 1 and publish:
        fail("--workers > 1 needs --no-publish: bridges on a shared subscription cannot use "
             "MQTT 5 No Local, so they would read back what they publish", 2)  # fmt: skip
    base = base_url or f"http://{settings.host}:{settings.port}/sta/v1.1"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from twin.alerts.rules import load_rules
    from twin.alerts.watch import RuleWatch
    from twin.runs.nowloop import NowcastLoop
    from twin.sense.live import LiveHub

    db_url = _db_url()
    hub = LiveHub()
    share = SHARE_GROUP if workers > 1 else None
    ident = settings.mqtt_client_id + ("-0" if share else "")
    bridge = Bridge(url, db_url, base=base, selects=settings.mqtt_selects, hub=hub,
                    batch_size=batch_size, publish_back=publish,
                    future_tolerance_s=settings.sense_future_tolerance_s,
                    client_id=ident, session_expiry_s=settings.mqtt_session_expiry_s,
                    share_group=share)  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    others = [ctx.Process(target=_worker, daemon=True, args=(
        url, db_url, base, batch_size, settings.sense_future_tolerance_s,
        f"{settings.mqtt_client_id}-{k}", settings.mqtt_session_expiry_s))
        for k in range(1, workers)]  # fmt: skip
    watch = loop = None
    if settings.live_alerts:
        rules = load_rules(settings.rules_dir)[0]
        watch = RuleWatch(db_url, rules, hub=hub)
        if settings.nowcast_every_s > 0:
            loop = NowcastLoop(settings, rules, every_s=settings.nowcast_every_s)

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            if watch is not None:
                await stack.enter_async_context(running(watch))
            if loop is not None:
                await stack.enter_async_context(running(loop))
            if settings.sense_maintenance_interval_s > 0:
                await stack.enter_async_context(running(maintainer))
            await bridge.run()

    maintainer = Maintainer(db_url, settings)
    typer.echo(f"bridge: {url} -> PostGIS" + (f" ({workers} workers)" if share else "")
               + "; Ctrl-C stops")  # fmt: skip
    for proc in others:
        proc.start()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
    finally:
        for proc in others:
            proc.terminate()
            proc.join(10)
    out = bridge.stats.as_dict()
    if watch is not None:
        out["alerts"] = {"evaluations": watch.stats.evaluations, "raised": watch.stats.raised,
                         "dispatched": watch.stats.dispatched}  # fmt: skip
    if loop is not None:
        out["nowcast"] = {"steps": loop.stats.steps, "skipped": loop.stats.skipped,
                          "failures": loop.stats.failures,
                          "dispatched": loop.stats.dispatched}  # fmt: skip
    out["maintenance"] = maintainer.stats
    typer.echo(json.dumps(out))


def _worker(url: str, db_url: str, base: str, batch_size: int, future_tolerance_s: float,
            client_id: str, session_expiry_s: int) -> None:  # fmt: skip
    """One more bridge of ``twin sense run --workers N`` (a process of its own)."""
    from twin.sense.bridge import Bridge

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    bridge = Bridge(url, db_url, base=base, batch_size=batch_size, publish_back=False,
                    future_tolerance_s=future_tolerance_s, client_id=client_id,
                    session_expiry_s=session_expiry_s, share_group=SHARE_GROUP)  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(bridge.run())


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
    """Datastreams, readings (all, from the roll-ups, and in the last hour), the latest
    reading, refused readings (dead letters) by reason and by source (mqtt, http), the broker."""
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


def _with_conn(work: Callable[[psycopg.Connection], T]) -> T:
    url = _db_url()
    try:
        with psycopg.connect(url) as conn:
            return work(conn)
    except (AuthError, InvalidParameterError) as exc:
        fail(str(exc), code=2)
    except NotFoundError as exc:
        fail(str(exc))
    except psycopg.OperationalError as exc:
        fail(f"database unavailable: {str(exc).splitlines()[0]}")


DatastreamOpt = Annotated[
    list[int],
    typer.Option("--datastream", "-d", min=1, help="A Datastream's @iot.id (repeat for more)."),
]


@device_app.command("add")
def device_add(
    name: Annotated[str, typer.Argument(help="Device name: its user and MQTT user name.")],
    datastream: DatastreamOpt,
    as_json: JsonOpt = False,
) -> None:
    """Create a device owning the datastreams; print its bearer token (HTTP) and MQTT password
    once (only their hashes are kept). Run `twin sense acl` and reload the broker after."""
    from twin.sense.devices import add_device

    row, token, password = _with_conn(lambda c: add_device(c, name, datastream))
    emit({**row, "token": token, "mqtt_password": password}, as_json,
         f"device {row['name']} created, datastreams {', '.join(map(str, row['datastreams']))}.\n"
         f"HTTP token (shown once): {token}\nMQTT user {row['name']}, password (shown once): "
         f"{password}\nnext: twin sense acl --out DIR, then reload the broker")  # fmt: skip


@device_app.command("list")
def device_list(as_json: JsonOpt = False) -> None:
    """Devices with their datastreams and state (never a secret)."""
    from twin.sense.devices import list_devices

    rows = _with_conn(list_devices)
    lines = [f"{r['id']:>4}  {r['name']:<24} {'revoked' if r['disabled'] else 'active':<8} "
             f"{','.join(map(str, r['datastreams']))}" for r in rows]  # fmt: skip
    emit({"devices": rows}, as_json, "\n".join(lines) or "no devices")


@device_app.command("grant")
def device_grant(
    name: str,
    datastream: Annotated[
        list[int] | None, typer.Option("--datastream", "-d", min=1, help="Datastream to add.")
    ] = None,
    remove: Annotated[
        list[int] | None, typer.Option("--remove", min=1, help="Datastream to take away.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add (or take away) datastreams of a device; run `twin sense acl` after for MQTT."""
    from twin.sense.devices import set_datastreams

    if not datastream and not remove:
        fail("give --datastream ID or --remove ID", 2)
    ids = _with_conn(lambda c: set_datastreams(c, name, datastream or [], remove))
    emit({"name": name, "datastreams": ids}, as_json,
         f"device {name}: datastreams {', '.join(map(str, ids)) or 'none'}")  # fmt: skip


@device_app.command("password")
def device_password(name: str, as_json: JsonOpt = False) -> None:
    """Issue a new MQTT password for a device and print it once (`twin users token NAME` issues
    a new HTTP token; `twin users revoke NAME` revokes both at the next `twin sense acl`)."""
    from twin.sense.devices import new_device_password

    password = _with_conn(lambda c: new_device_password(c, name))
    emit({"name": name, "mqtt_password": password}, as_json,
         f"new MQTT password for {name} (shown once): {password}")  # fmt: skip


@device_app.command("delete")
def device_delete(
    name: Annotated[str, typer.Argument(help="The device's name.")],
    acl_out: Annotated[
        Path | None,
        typer.Option(
            "--acl-out",
            help="Where `twin sense acl` writes the broker's files: they "
            "are written again there, without the device.",
        ),
    ] = None,
    mqtt_url: MqttOpt = None,
    bridge_user: Annotated[
        str | None, typer.Option(help="The bridge's MQTT user (as for `twin sense acl`).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a device: revoke its HTTP token, its MQTT password and its datastream grants
    (its past Observations stay; its user stays, revoked, with its audit trail). With
    --acl-out, write the broker's files again (the bridge keeps its password); reload the
    broker after."""
    from twin.cli.tasks import actor
    from twin.sense.devices import delete_device

    done = _with_conn(lambda c: delete_device(c, name, actor=actor()))  # commits
    result: dict[str, Any] = dict(done)
    human = (f"device {name} deleted: token and MQTT password revoked, datastreams "
             f"{', '.join(map(str, done['datastreams'])) or 'none'} no longer its own; "
             f"{done['observations_kept']} past observations kept")  # fmt: skip
    if acl_out is None:
        human += "\nnext: twin sense acl --out DIR, then reload the broker"
    else:
        result["acl"], words = _write_acl(acl_out, mqtt_url, bridge_user, keep_bridge=True)
        human += f"\n{words}\nreload the broker (SIGHUP) to apply"
    emit(result, as_json, human)


@sense_app.command("range")
def range_cmd(
    datastream: Annotated[int, typer.Argument(min=1, help="The Datastream's @iot.id.")],
    low: Annotated[
        float | None, typer.Option("--min", help="Lowest value it can measure (its unit).")
    ] = None,
    high: Annotated[
        float | None, typer.Option("--max", help="Highest value it can measure (its unit).")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="No physical range.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Set (or --clear) a Datastream's physical range, its properties.physicalRange: readings
    outside it are refused (dead letters). A side left out is unbounded. Audited."""
    from twin.cli.tasks import actor
    from twin.sense.ranges import PROPERTY, Limits, set_range

    if clear and (low is not None or high is not None):
        fail(f"Datastream {datastream}: give --clear or --min/--max, not both", 2)
    if not clear and low is None and high is None:
        fail(f"Datastream {datastream}: give --min and/or --max, or --clear", 2)

    before, after = _with_conn(lambda c: set_range(c, datastream, Limits(low, high),
                                                   actor=actor()))  # fmt: skip
    shown = None if after == Limits() else {"min": after.low, "max": after.high}
    emit({"datastream": datastream, PROPERTY: shown,
          "before": None if before == Limits() else {"min": before.low, "max": before.high}},
         as_json, f"Datastream {datastream}: physical range "
         f"{'cleared' if shown is None else after.text()} (was {before.text()}); the MQTT "
         "bridge applies it within 30 s")  # fmt: skip


@sense_app.command("acl")
def acl(
    out: Annotated[Path, typer.Option("--out", help="Directory for passwd, acl, mosquitto.conf.")],
    mqtt_url: MqttOpt = None,
    bridge_user: Annotated[
        str | None,
        typer.Option(
            help="The bridge's MQTT user; default the user of TWIN_MQTT_URL, else twin-bridge."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write Mosquitto's password file, ACL file and mosquitto.conf snippet.

    Each active device may write only its own datastreams' Observations; the bridge reads
    them all and writes the fan-out topics. Reload the broker (SIGHUP) after."""
    result, human = _write_acl(out, mqtt_url, bridge_user)
    emit(result, as_json, human + "\nreload the broker (SIGHUP) to apply")


def _write_acl(
    out: Path, mqtt_url: str | None, bridge_user: str | None, *, keep_bridge: bool = False
) -> tuple[dict[str, Any], str]:
    """Write the broker's files under ``out`` (``twin sense acl``); the result and its words.

    The bridge's password: that of TWIN_MQTT_URL; else, with ``keep_bridge``, the bridge's
    line of the password file already there (a regeneration keeps the running bridge in);
    else a new one, printed once."""
    from twin.sense.bridge import parse_mqtt_url
    from twin.sense.devices import BRIDGE_USER, broker_files, new_password

    settings = load_settings()
    url = mqtt_url or settings.mqtt_url
    broker = None
    if url:
        try:
            broker = parse_mqtt_url(url)
        except ValueError as exc:
            fail(str(exc), 2)
    user = bridge_user or (broker.username if broker and broker.username else BRIDGE_USER)
    given = broker.password if broker and broker.username == user else None
    kept = None
    if given is None and keep_bridge and (out / "passwd").is_file():
        kept = next((line.split(":", 1)[1] for line in (out / "passwd").read_text().splitlines()
                     if line.startswith(f"{user}:")), None)  # fmt: skip
    password = given or new_password()
    files = _with_conn(
        lambda c: broker_files(
            c,
            out,
            bridge_password=password,
            bridge_user=user,
            selects=settings.mqtt_selects,
            bridge_hash=kept,
        )
    )
    paths = files.write(out)
    result: dict[str, Any] = {"files": [str(p) for p in paths], "devices": files.devices,
                              "bridge_user": user}  # fmt: skip
    human = f"wrote {', '.join(str(p) for p in paths)} ({files.devices} devices)"
    if given is None and kept is None:
        result["bridge_password"] = password
        human += (f"\nbridge password (shown once): {password}\nrun the bridge with "
                  f"TWIN_MQTT_URL=mqtt://{user}:<password>@HOST:PORT")  # fmt: skip
    return result, human


@sense_app.command("storm-file")
def storm_file_cmd(
    out: Annotated[Path, typer.Argument(help="CSV to write (datastream,time,value).")],
    years: Annotated[float, typer.Option(help="Return period of the storm (years).")] = 50.0,
    duration: Annotated[float, typer.Option(min=1, help="Storm duration (min).")] = 60.0,
    seed: Annotated[int, typer.Option(help="Seed of the gauges' scatter.")] = 1,
) -> None:
    """Write a recorded storm for this twin's rain gauges and water-level sensors (a design
    storm, deterministic for a seed), to replay with `twin sense replay`."""
    from twin.sense.replay import DEMO_SENSORS_SQL, demo_sensors, storm_file

    with psycopg.connect(_db_url()) as conn:
        rows = conn.execute(DEMO_SENSORS_SQL).fetchall()
    gauges, levels = demo_sensors(rows, seed=seed)
    if not gauges and not levels:
        fail("this twin has no rain gauges or water-level sensors (twin.sensor)")
    n = storm_file(out, gauges, levels, return_period_years=years, duration_min=duration,
                   seed=seed)  # fmt: skip
    typer.echo(f"{n} readings of {len(gauges)} rain gauges and {len(levels)} water levels: {out}")


@sense_app.command("replay")
def replay_cmd(
    file: Annotated[Path, typer.Argument(help="CSV of readings: datastream,time,value.")],
    speed: Annotated[float, typer.Option(min=0.001, help="Times the recorded pace.")] = 60.0,
    mqtt_url: MqttOpt = None,
    loop: Annotated[bool, typer.Option(help="Start again at the end, until interrupted.")] = False,
) -> None:
    """Publish recorded readings over MQTT at N times their pace, each stamped with the moment
    it is sent (the bridge stores them; alerts follow)."""
    from twin.errors import InvalidParameterError
    from twin.sense.replay import read_replay, replay

    url = mqtt_url or load_settings().mqtt_url
    if not url:
        fail("no broker: set TWIN_MQTT_URL or pass --mqtt-url mqtt://host:port", 2)
    try:
        readings = read_replay(file)
    except (InvalidParameterError, OSError) as exc:
        fail(str(exc), 2)
    span = readings[-1].t_s / speed
    typer.echo(f"replaying {len(readings)} readings over {span:.0f} s to {url}")
    with contextlib.suppress(KeyboardInterrupt):
        sent = asyncio.run(replay(readings, url, speed=speed, loop=loop))
        typer.echo(f"sent {sent} readings")


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
