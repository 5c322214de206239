"""The MQTT bridge of the SensorThings MQTT extension, on a real broker (aiomqtt).

- A device publishes an Observation JSON (or a list of them) to
  ``v1.1/Datastreams(<id>)/Observations``; the bridge subscribes (QoS 1, MQTT 5), stores the
  readings in batches (one multi-row insert with ``ON CONFLICT DO NOTHING``: replays are
  harmless) and hands them to the in-process live feed.
- Every stored Observation (from MQTT, or from the HTTP API when the bridge runs in the API
  process) is published back, as the entity with its ``@iot.id``, to
  ``v1.1/Datastreams(<id>)/Observations``, and to ``...Observations?$select=<s>`` for each
  ``$select`` of ``TWIN_MQTT_SELECTS``. The bridge subscribes with MQTT 5 "no local", so it
  does not read back what it publishes. An external broker, not the twin, knows who subscribed
  to what, hence the configured list of ``$select`` topics.
- A bad payload (not JSON, not an Observation, unknown datastream, phenomenonTime more than
  ``future_tolerance_s`` ahead, a topic that is not a Datastream's Observations) is counted,
  logged and kept, raw and with the reason, in ``twin.sense_dead_letter`` (committed with the
  batch); it never stops the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import aiomqtt
import psycopg
from paho.mqtt.subscribeoptions import SubscribeOptions

from twin.sense.live import LiveHub
from twin.sense.write import (
    BadEntity,
    Reading,
    known_datastreams,
    reading_from,
    store_counted,
    store_dead_letters,
)

log = logging.getLogger(__name__)

SUBSCRIPTION = "v1.1/+/Observations"
TOPIC = re.compile(r"v1\.1/Datastreams\((\d{1,18})\)/Observations")
ORIGIN = "_origin"  # key marking hub items the bridge itself stored


@dataclass(frozen=True)
class Broker:
    hostname: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_mqtt_url(url: str) -> Broker:
    """``mqtt://[user:password@]host[:port]`` (``mqtts://`` for TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"TWIN_MQTT_URL: expected mqtt://host[:port], got {url!r}")
    tls = parts.scheme == "mqtts"
    return Broker(parts.hostname, parts.port or (8883 if tls else 1883),
                  unquote(parts.username) if parts.username else None,
                  unquote(parts.password) if parts.password else None, tls)  # fmt: skip


def client_for(broker: Broker, identifier: str | None = None) -> aiomqtt.Client:
    return aiomqtt.Client(
        broker.hostname, broker.port, username=broker.username, password=broker.password,
        identifier=identifier, protocol=aiomqtt.ProtocolVersion.V5,
        tls_params=aiomqtt.TLSParameters() if broker.tls else None,
    )  # fmt: skip


def observation_json(reading: Reading, ident: int, base: str) -> dict[str, Any]:
    """The stored Observation as SensorThings JSON (what subscribers and /api/live get)."""
    from twin.sense.entities import iso

    link = f"{base}/Observations({ident})"
    phenomenon = iso(reading.time) + (f"/{iso(reading.until)}" if reading.until else "")
    out: dict[str, Any] = {
        "@iot.id": ident, "@iot.selfLink": link, "phenomenonTime": phenomenon,
        "resultTime": iso(reading.result_time) if reading.result_time else None,
        "result": reading.value, "Datastream@iot.navigationLink": f"{link}/Datastream",
        "Datastream": {"@iot.id": reading.datastream},
    }  # fmt: skip
    if reading.quality is not None:
        out["resultQuality"] = reading.quality
    if reading.parameters:
        out["parameters"] = reading.parameters
    return out


def select_fields(obj: dict[str, Any], select: str) -> dict[str, Any]:
    names = [n.strip() for n in select.split(",") if n.strip()]
    return {k: obj[k] for k in names if k in obj}


@dataclass
class Stats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    published: int = 0
    unpublished: int = 0  # stored but not published back (the outbox was full)
    batches: int = 0
    last_reject: str | None = None
    started: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class Bridge:
    """Runs until cancelled; reconnects to the broker and the database when they go away."""

    def __init__(
        self, mqtt_url: str, db_url: str, *, base: str, hub: LiveHub | None = None,
        selects: list[str] | None = None, batch_size: int = 2000, batch_wait_s: float = 0.05,
        publish_back: bool = True, future_tolerance_s: float = 600.0,
    ) -> None:  # fmt: skip
        self.future_tolerance = timedelta(seconds=future_tolerance_s)
        self.broker = parse_mqtt_url(mqtt_url)
        self.db_url = db_url
        self.base = base.rstrip("/")
        self.hub = hub
        self.selects = list(selects or [])
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s
        self.publish_back = publish_back
        self.stats = Stats()
        self.ready = asyncio.Event()
        self._known: set[int] = set()
        self._dead: list[tuple[str, str, bytes, int | None]] = []
        self._queue: asyncio.Queue[aiomqtt.Message] = asyncio.Queue(100_000)
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(100_000)

    async def run(self) -> None:
        while True:
            try:
                await self._session()
            except (aiomqtt.MqttError, psycopg.OperationalError, OSError) as exc:
                self.ready.clear()
                log.warning("sense bridge: %s; reconnecting in 1 s", exc)
                await asyncio.sleep(1.0)

    async def _session(self) -> None:
        async with (
            client_for(self.broker) as client,
            await psycopg.AsyncConnection.connect(self.db_url, autocommit=False) as conn,
        ):
            await client.subscribe(SUBSCRIPTION, options=SubscribeOptions(qos=1, noLocal=True))
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._read(client))
                tg.create_task(self._write(client, conn))
                tg.create_task(self._send(client))
                if self.hub is not None:
                    tg.create_task(self._fan_out(client))
                self.ready.set()

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            await self._queue.put(message)

    async def _write(self, client: aiomqtt.Client, conn: psycopg.AsyncConnection) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(self._queue.get(), left))
                    except TimeoutError:
                        break
            await self._store(client, conn, batch)

    def _reject(self, topic: str, reason: str, raw: bytes = b"",
                ds: int | None = None) -> None:  # fmt: skip
        self._dead.append((topic, reason, raw, ds))
        self.stats.rejected += 1
        self.stats.last_reject = f"{topic}: {reason}"[:300]
        log.warning("sense bridge: rejected %s: %s", topic, reason)

    def parse(self, topic: str, payload: bytes) -> list[Reading]:
        m = TOPIC.fullmatch(topic)
        if m is None:
            raise BadEntity("topic is not v1.1/Datastreams(<id>)/Observations")
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise BadEntity("payload is not JSON") from None
        items = body if isinstance(body, list) else [body]
        return [reading_from(item, datastream=int(m.group(1)))[0] for item in items]

    async def _store(
        self, client: aiomqtt.Client, conn: psycopg.AsyncConnection,
        batch: list[aiomqtt.Message],
    ) -> None:  # fmt: skip
        self._dead = []
        per_message: list[tuple[str, bytes, list[Reading]]] = []
        horizon = datetime.now(UTC) + self.future_tolerance
        for message in batch:
            self.stats.received += 1
            topic = str(message.topic)
            payload = message.payload if isinstance(message.payload, bytes) else \
                str(message.payload).encode()  # fmt: skip
            try:
                got = self.parse(topic, payload)
            except BadEntity as exc:
                self._reject(topic, str(exc), payload)
                continue
            late = [r for r in got if r.time > horizon]
            if late:
                self._reject(topic, f"phenomenonTime more than {self.future_tolerance} in the "
                             "future", payload, got[0].datastream)  # fmt: skip
                continue
            per_message.append((topic, payload, got))
        unknown = {r.datastream for _, _, rs in per_message for r in rs} - self._known
        if unknown:
            self._known |= await known_datastreams(conn, unknown)
            await conn.commit()
        good: list[Reading] = []
        for topic, payload, rs in per_message:
            if all(r.datastream in self._known for r in rs):
                good.extend(rs)
            else:
                self._reject(topic, "unknown datastream", payload, rs[0].datastream)
        if self._dead:
            await store_dead_letters(conn, self._dead)
        if not good:
            await conn.commit()
            return
        ids, before = await store_counted(conn, good)
        await conn.commit()
        self.stats.batches += 1
        self.stats.stored += before
        self.stats.duplicates += len(good) - before
        items = [observation_json(r, i, self.base) for r, i in zip(good, ids, strict=True)]
        if self.hub is not None:
            self.hub.publish([{**item, ORIGIN: "mqtt"} for item in items])
        for item in items if self.publish_back else ():
            if self._outbox.full():
                self.stats.unpublished += 1
            else:
                self._outbox.put_nowait(item)

    async def _send(self, client: aiomqtt.Client) -> None:
        """Publish stored Observations back, off the storing path."""
        while True:
            await self.publish(client, [await self._outbox.get()])

    async def publish(self, client: aiomqtt.Client, items: list[dict[str, Any]]) -> None:
        for item in items:
            ds = item["Datastream"]["@iot.id"]
            topic = f"v1.1/Datastreams({ds})/Observations"
            await client.publish(topic, json.dumps(item), qos=0)
            for sel in self.selects:
                await client.publish(f"{topic}?$select={sel}",
                                     json.dumps(select_fields(item, sel)), qos=0)  # fmt: skip
            self.stats.published += 1

    async def _fan_out(self, client: aiomqtt.Client) -> None:
        """Observations created over HTTP in this process, to MQTT subscribers."""
        assert self.hub is not None
        async with self.hub.subscribe() as queue:
            while True:
                item = await queue.get()
                if ORIGIN in item or "Datastream" not in item:
                    continue
                if not self._outbox.full():
                    self._outbox.put_nowait(item)


class Runs(Protocol):
    async def run(self) -> None: ...


@contextlib.asynccontextmanager
async def running(service: Runs) -> Any:
    """Run ``service.run()`` (the bridge, the rule watch) in a task for the block."""
    task = asyncio.create_task(service.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
