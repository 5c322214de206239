"""The MQTT bridge of the SensorThings MQTT extension, on a real broker (aiomqtt).

- A device publishes an Observation JSON (or a list of them) to
  ``v1.1/Datastreams(<id>)/Observations``; the bridge subscribes (QoS 1, MQTT 5), stores the
  readings in batches (one multi-row insert with ``ON CONFLICT DO NOTHING``: replays are
  harmless) and hands them to the in-process live feed.
- Nothing acknowledged is lost: the bridge acknowledges (PUBACK) a message only after the batch
  holding it is committed, its readings stored or the message kept as a dead letter. It keeps a
  persistent MQTT 5 session (a stable client id, clean start off, a session expiry interval),
  so the broker keeps what was not acknowledged and delivers it again after a reconnect or a
  restart of the bridge; a message delivered twice is stored once (the key of
  ``twin.observation``). When the database goes away, the bridge keeps its broker session,
  acknowledges nothing, retries the batch with backoff on a new connection and goes on.
- Every stored Observation (from MQTT, or from the HTTP API when the bridge runs in the API
  process) is published back, as the entity with its ``@iot.id``, to
  ``v1.1/Datastreams(<id>)/Observations``, and to ``...Observations?$select=<s>`` for each
  ``$select`` of ``TWIN_MQTT_SELECTS``. The bridge subscribes with MQTT 5 "no local", so it
  does not read back what it publishes. An external broker, not the twin, knows who subscribed
  to what, hence the configured list of ``$select`` topics.
- Several bridges (processes, ``twin sense run --workers N``) can share the load: each
  subscribes to ``$share/<group>/v1.1/+/Observations`` (MQTT 5 shared subscription) with its
  own stable client id and persistent session, and the broker hands each message to one of
  them; a message one of them has not acknowledged stays in that one's session and comes again
  when it reconnects. Such bridges do not publish back (MQTT 5 allows no "no local" on a shared
  subscription: they would read their own Observations again).
- A bad payload (not JSON, not an Observation, unknown datastream, a result outside the
  datastream's physical range, phenomenonTime more than ``future_tolerance_s`` ahead, a topic
  that is not a Datastream's Observations, a reading the database refuses) is counted, logged
  and kept, raw and with the reason, in ``twin.sense_dead_letter`` (committed with the batch);
  it never stops the bridge.
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
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from twin.cancellation import get_within, raise_if_cancelling
from twin.sense import ingest
from twin.sense.ingest import Row
from twin.sense.live import LiveHub
from twin.sense.ranges import OUT_OF_RANGE, TOO_FAR_AHEAD, UNKNOWN_DATASTREAM, Limits, limits_of
from twin.sense.write import BadEntity, DeadLetter, Reading, store_dead_letters

log = logging.getLogger(__name__)

SUBSCRIPTION = "v1.1/+/Observations"
TOPIC = re.compile(r"v1\.1/Datastreams\((\d{1,18})\)/Observations")
ORIGIN = "_origin"  # key marking hub items the bridge itself stored
CLIENT_ID = "twin-sense-bridge"
SHARE_GROUP = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Errors that mean "the database is not there now" (server gone, restarting, pool empty): retry.
DB_DOWN = (psycopg.OperationalError, psycopg.InterfaceError)


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


def client_for(
    broker: Broker, identifier: str | None = None, *, session_expiry_s: int | None = None,
    receive_maximum: int = 0,
) -> aiomqtt.Client:  # fmt: skip
    """An MQTT 5 client; with ``session_expiry_s``, a persistent session with manual
    acknowledgement (:func:`ack`) that the broker keeps that long after a disconnect."""
    if session_expiry_s is None:
        return aiomqtt.Client(
            broker.hostname, broker.port, username=broker.username, password=broker.password,
            identifier=identifier, protocol=aiomqtt.ProtocolVersion.V5,
            tls_params=aiomqtt.TLSParameters() if broker.tls else None,
        )  # fmt: skip
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry_s
    if receive_maximum:  # how many unacknowledged QoS 1 messages the broker may send ahead
        props.ReceiveMaximum = min(65535, receive_maximum)
    client = aiomqtt.Client(
        broker.hostname, broker.port, username=broker.username, password=broker.password,
        identifier=identifier, protocol=aiomqtt.ProtocolVersion.V5, clean_start=False,
        properties=props, tls_params=aiomqtt.TLSParameters() if broker.tls else None,
    )  # fmt: skip
    # aiomqtt 2.5 has no manual-acknowledgement API; the paho client it wraps has.
    client._client.manual_ack_set(True)
    return client


def ack(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    """PUBACK ``message`` on the connection that delivered it (a client of :func:`client_for`
    with a session). Packet ids belong to one connection: never ack on another one."""
    if message.qos > 0:
        client._client.ack(message.mid, message.qos)


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
    acked: int = 0  # messages acknowledged to the broker (after their batch was committed)
    published: int = 0
    unpublished: int = 0  # stored but not published back (the outbox was full)
    batches: int = 0
    db_errors: int = 0  # failed attempts at a batch while the database was away (retried)
    sessions: int = 0  # broker connections made
    last_reject: str | None = None
    last_error: str | None = None
    started: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class _Parsed:
    """One received message: its readings, or why it is refused."""

    topic: str
    payload: bytes
    rows: list[Row]
    reason: str | None = None
    datastream: int | None = None


class Bridge:
    """Runs until cancelled; reconnects to the broker and the database when they go away."""

    def __init__(
        self, mqtt_url: str, db_url: str, *, base: str, hub: LiveHub | None = None,
        selects: list[str] | None = None, batch_size: int = 2000, batch_wait_s: float = 0.05,
        publish_back: bool = True, future_tolerance_s: float = 600.0,
        client_id: str = CLIENT_ID, session_expiry_s: int = 86_400,
        retry_min_s: float = 0.1, retry_max_s: float = 5.0, limits_ttl_s: float = 30.0,
        share_group: str | None = None,
    ) -> None:  # fmt: skip
        if share_group is not None:
            if not SHARE_GROUP.fullmatch(share_group):
                raise ValueError(f"share group {share_group!r}: letters, digits, '_' or '-'")
            if publish_back:  # MQTT 5 forbids No Local on a shared subscription
                raise ValueError("a bridge on a shared subscription cannot publish back: it "
                                 "would read its own Observations again")  # fmt: skip
        self.share_group = share_group
        self.future_tolerance = timedelta(seconds=future_tolerance_s)
        self.broker = parse_mqtt_url(mqtt_url)
        self.db_url = db_url
        self.base = base.rstrip("/")
        self.hub = hub
        self.selects = list(selects or [])
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s
        self.publish_back = publish_back
        self.client_id = client_id
        self.session_expiry_s = session_expiry_s
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.limits_ttl_s = limits_ttl_s
        self.stats = Stats()
        self.ready = asyncio.Event()
        self._limits: dict[int, Limits] = {}
        self._limits_at = time.monotonic()
        self._conn: psycopg.AsyncConnection | None = None
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(100_000)
        self._own_subscriptions = 0  # the hub subscriptions of _fan_out

    async def run(self) -> None:
        delay = self.retry_min_s
        try:
            while True:
                try:
                    await self._session()
                except Exception as exc:  # the broker went away (an ExceptionGroup of the tasks)
                    # A cancellation that reached the tasks as this session failed comes out
                    # as the group of their errors: it must still end the bridge.
                    raise_if_cancelling()
                    why = _first(exc)
                    self.stats.last_error = f"broker: {why}"[:300]
                    if self.ready.is_set():  # it was up: start again quickly
                        delay = self.retry_min_s
                        log.warning("sense bridge: broker session ended (%s); reconnecting", why)
                self.ready.clear()
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.retry_max_s)
        finally:
            self.ready.clear()
            await self._drop_connection()

    async def _session(self) -> None:
        client = client_for(self.broker, self.client_id, session_expiry_s=self.session_expiry_s,
                            receive_maximum=2 * self.batch_size)  # fmt: skip
        async with client:
            self.stats.sessions += 1
            # Messages of this connection only: the packet ids of another one mean nothing here.
            queue: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
            if self.share_group is None:
                await client.subscribe(SUBSCRIPTION,
                                       options=SubscribeOptions(qos=1, noLocal=True))  # fmt: skip
            else:  # one of several bridges: the broker hands each message to one of them
                await client.subscribe(f"$share/{self.share_group}/{SUBSCRIPTION}",
                                       options=SubscribeOptions(qos=1))  # fmt: skip
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._read(client, queue))
                tg.create_task(self._write(client, queue))
                tg.create_task(self._send(client))
                if self.hub is not None:
                    tg.create_task(self._fan_out(client))
                self.ready.set()

    async def _read(self, client: aiomqtt.Client, queue: asyncio.Queue[aiomqtt.Message]) -> None:
        # aiomqtt's iterator makes a task per message (to notice a disconnect meanwhile); take
        # what is already waiting in its queue directly, and wait through the iterator only
        # when nothing is (it raises once the broker is gone, ending the session).
        inbox: asyncio.Queue[aiomqtt.Message] | None = getattr(client, "_queue", None)
        messages = client.messages
        while True:
            if inbox is None:  # an aiomqtt without that queue: the iterator alone is correct
                message = await anext(messages)
                raise_if_cancelling()
            else:
                try:
                    message = inbox.get_nowait()
                except asyncio.QueueEmpty:
                    message = await anext(messages)
                    raise_if_cancelling()
            queue.put_nowait(message)

    async def _write(self, client: aiomqtt.Client, queue: asyncio.Queue[aiomqtt.Message]) -> None:
        """Batches of at most ``batch_size`` readings (a message may hold a list of them), or
        what arrived within ``batch_wait_s`` of the first message."""
        while True:
            first = await queue.get()
            horizon = datetime.now(UTC) + self.future_tolerance
            batch = [first]
            parsed = [self._parse(first, horizon)]
            size = len(parsed[0].rows)
            deadline = time.monotonic() + self.batch_wait_s
            while size < self.batch_size and len(batch) < self.batch_size:
                try:
                    message = queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    got = await get_within(queue, left)
                    if got is None:
                        break
                    message = got
                batch.append(message)
                parsed.append(self._parse(message, horizon))
                size += len(parsed[-1].rows)
            await self._settle(client, batch, parsed)
            raise_if_cancelling()

    def parse(self, topic: str, payload: bytes) -> list[Row]:
        """The rows of one message (:func:`twin.sense.ingest.rows_of`); BadEntity if refused."""
        m = TOPIC.fullmatch(topic)
        if m is None:
            raise BadEntity("topic is not v1.1/Datastreams(<id>)/Observations")
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise BadEntity("payload is not JSON") from None
        return ingest.rows_of(body, int(m.group(1)))

    def _parse(self, message: aiomqtt.Message, horizon: datetime) -> _Parsed:
        topic = str(message.topic)
        payload = message.payload if isinstance(message.payload, bytes) else \
            str(message.payload).encode()  # fmt: skip
        try:
            got = self.parse(topic, payload)
        except BadEntity as exc:
            return _Parsed(topic, payload, [], str(exc))
        ds = got[0][0] if got else None
        if got and max(r[1] for r in got) > horizon:
            return _Parsed(topic, payload, [], TOO_FAR_AHEAD, ds)
        return _Parsed(topic, payload, got, None, ds)

    async def _settle(
        self, client: aiomqtt.Client, batch: list[aiomqtt.Message], parsed: list[_Parsed]
    ) -> None:
        """Commit the batch (retrying while the database is away), then acknowledge it."""
        delay = self.retry_min_s
        while True:
            try:
                good, ids, new, dead = await self._commit(parsed)
                break
            except DB_DOWN as exc:
                self.stats.db_errors += 1
                self.stats.last_error = f"database: {exc}"[:300]
                if self.stats.db_errors == 1 or delay >= self.retry_max_s:
                    log.warning("sense bridge: database unavailable (%s); %d message(s) wait,"
                                " retrying in %.1f s", exc, len(batch), delay)  # fmt: skip
                await self._drop_connection()
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.retry_max_s)
            except BaseException:  # cancelled mid-statement: the connection's state is unknown
                await self._drop_connection()
                raise
        for message in batch:  # committed: now the broker may forget them
            ack(client, message)
        self.stats.received += len(batch)
        self.stats.acked += len(batch)
        for topic, reason, _, _ in dead:
            self.stats.rejected += 1
            self.stats.last_reject = f"{topic}: {reason}"[:300]
            log.warning("sense bridge: rejected %s: %s", topic, reason)
        if not good:
            return
        self.stats.batches += 1
        self.stats.stored += new
        self.stats.duplicates += len(good) - new
        if not ids:  # nobody to tell (see _want_ids)
            return
        items = [observation_json(Reading(*r), i, self.base) for r, i in zip(good, ids,
                                                                          strict=True)]  # fmt: skip
        if self.hub is not None:
            self.hub.publish([{**item, ORIGIN: "mqtt"} for item in items])
        for item in items if self.publish_back else ():
            if self._outbox.full():
                self.stats.unpublished += 1
            else:
                self._outbox.put_nowait(item)

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            conn = await psycopg.AsyncConnection.connect(
                self.db_url, autocommit=True, connect_timeout=10
            )
            try:
                await ingest.prepare(conn)
            except BaseException:
                await conn.close()
                raise
            self._conn = conn
        return self._conn

    def _want_ids(self) -> bool:
        """Whether stored readings go anywhere (published back, or to a hub subscriber other
        than the bridge's own fan-out): only then are their ids read back."""
        if self.publish_back:
            return True
        return self.hub is not None and self.hub.subscribers > self._own_subscriptions

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _known(self, conn: psycopg.AsyncConnection, ids: set[int]) -> dict[int, Limits]:
        """Limits of the datastreams among ``ids`` (cached; a changed range is seen within
        ``limits_ttl_s``)."""
        if time.monotonic() - self._limits_at > self.limits_ttl_s:
            self._limits, self._limits_at = {}, time.monotonic()
        missing = ids - self._limits.keys()
        if missing:
            self._limits.update(await limits_of(conn, missing))
        return self._limits

    async def _commit(
        self, parsed: list[_Parsed]
    ) -> tuple[list[Row], list[int], int, list[DeadLetter]]:
        """One transaction: the good readings and the dead letters. Returns the stored rows,
        their ids (none when nobody wants them: :meth:`_want_ids`), how many were new and the
        dead letters."""
        conn = await self._connection()
        async with conn.transaction():
            return await self._commit_in(conn, parsed)

    async def _commit_in(
        self, conn: psycopg.AsyncConnection, parsed: list[_Parsed]
    ) -> tuple[list[Row], list[int], int, list[DeadLetter]]:
        known = await self._known(conn, {p.datastream for p in parsed if p.datastream is not None})
        dead: list[DeadLetter] = []
        accepted: list[_Parsed] = []
        for p in parsed:
            reason = p.reason
            if reason is None:
                limits = known.get(p.datastream) if p.datastream is not None else None
                if limits is None:
                    reason = UNKNOWN_DATASTREAM
                elif not _admits(limits, p.rows):
                    reason = OUT_OF_RANGE
            if reason is None:
                accepted.append(p)
            else:
                dead.append((p.topic, reason, p.payload, p.datastream))
        good = [r for p in accepted for r in p.rows]
        want_ids = self._want_ids()
        try:
            async with conn.transaction():
                ids, new = await ingest.store_rows(conn, good, want_ids=want_ids)
        except DB_DOWN:
            raise
        except psycopg.Error:  # a reading the database refuses: find it, keep the others
            good, ids, new = [], [], 0
            for p in accepted:
                try:
                    async with conn.transaction():
                        got, n = await ingest.store_rows(conn, p.rows, want_ids=want_ids)
                except DB_DOWN:
                    raise
                except psycopg.Error as exc:
                    dead.append((p.topic, f"database refused it ({exc.sqlstate})", p.payload,
                                 p.datastream))  # fmt: skip
                    continue
                good += p.rows
                ids += got
                new += n
        if dead:
            await store_dead_letters(conn, dead)
        return good, ids, new, dead

    async def _send(self, client: aiomqtt.Client) -> None:
        """Publish stored Observations back, off the storing path."""
        while True:
            await self.publish(client, [await self._outbox.get()])
            raise_if_cancelling()  # aiomqtt's publish waits with asyncio.wait_for
            # Neither a full queue's get() nor a publish paho sends at once yields to the loop:
            # without this, a long outbox starves the storing (and the acknowledgements).
            await asyncio.sleep(0)

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
            self._own_subscriptions += 1
            try:
                while True:
                    item = await queue.get()
                    if ORIGIN in item or "Datastream" not in item:
                        continue
                    if not self._outbox.full():
                        self._outbox.put_nowait(item)
            finally:
                self._own_subscriptions -= 1


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


def _admits(limits: Limits, rows: list[Row]) -> bool:
    """Whether every row's value is within ``limits`` (the datastream's physical range)."""
    if limits.low is None and limits.high is None:
        return True
    values = [r[2] for r in rows]
    return not values or (limits.admits(min(values)) and limits.admits(max(values)))


def _first(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (the task error that ended a session)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
