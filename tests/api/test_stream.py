"""``/api/stream``: alerts and task transitions pushed as they commit, scoped to the caller, and
resumable with ``Last-Event-ID`` without gaps, even when transactions commit out of order.

What should arrive is decided here from the rows this test writes itself (on its own superuser
connection) and from ``twin.area_subtree`` of each district, not from the feed under test.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.api.scope_world import District, make_world
from twin.settings import Settings


@pytest.fixture(scope="module")
def world(tiny_settings: Settings) -> dict[str, District]:
    return make_world(tiny_settings, "stream")


def horizon(settings: Settings) -> str:
    """A cursor before anything this test writes next: the event id of a reader that has every
    transaction visible in a snapshot taken now (``xmin-<xmax-xmin>-<xip-xmin>,...``)."""
    with psycopg.connect(settings.database_url) as c:
        row = c.execute("SELECT pg_current_snapshot()::text").fetchone()
    assert row is not None
    xmin, xmax, xip = (part for part in str(row[0]).split(":"))
    low = int(xmin)
    tail = ",".join(str(int(x) - low) for x in xip.split(",") if x)
    return f"{low}-{int(xmax) - low}" + (f"-{tail}" if tail else "")


def add_alert(c: psycopg.Connection, district: District, tag: str) -> int:
    row = c.execute(
        "INSERT INTO twin.alert (rule_id, dedup_key, level, area_id, message)"
        " VALUES ('stream-test', %s, 'orange', %s, %s) RETURNING id",
        (f"stream-{tag}-{time.monotonic_ns()}", district.patch, f"test alert {tag}"),
    ).fetchone()
    assert row is not None
    return int(row[0])


def write(settings: Settings, fn: Any) -> Any:
    with psycopg.connect(settings.database_url) as c:
        out = fn(c)
        c.commit()
    return out


def events(
    client: TestClient,
    *,
    headers: dict[str, str] | None = None,
    into: list[tuple[str | None, str, Any]] | None = None,
    **params: Any,
) -> list[tuple[str | None, str, Any]]:
    """(id, event, data) of each event until the stream closes (``limit`` / ``timeout``), also
    appended to ``into`` as each arrives."""
    out: list[tuple[str | None, str, Any]] = [] if into is None else into
    current: dict[str, str] = {}
    with client.stream("GET", "/api/stream", params=params, headers=headers or {}) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line:
                if "event" in current:
                    out.append((current.get("id"), current["event"], json.loads(current["data"])))
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                current[key] = value
    return out


def of_kind(got: list[tuple[str | None, str, Any]], kind: str) -> list[tuple[str | None, Any]]:
    return [(i, d) for i, k, d in got if k == kind]


def test_a_district_user_gets_only_its_own_district(
    tiny_client: TestClient, tiny_settings: Settings, world: dict[str, District]
) -> None:
    a, b = world["A"], world["B"]
    start = horizon(tiny_settings)
    ids = write(
        tiny_settings,
        lambda c: [add_alert(c, d, d.key + str(n)) for n in range(2) for d in (b, a)],
    )
    mine = {"A": set(ids[1::2]), "B": set(ids[0::2])}
    for d in (a, b):
        got = events(tiny_client, headers=d.headers, since=start, timeout=3)
        alerts = of_kind(got, "alert")
        test_ids = {x["id"] for _, x in alerts if x["rule_id"] == "stream-test"}
        assert test_ids == mine[d.key]
        # and nothing at all outside the district, whatever else the twin did meanwhile
        assert all(x["area_id"] in d.areas for _, x in alerts)
        assert all(t["task"]["area"]["id"] in d.areas for _, t in of_kind(got, "task"))


def test_task_transitions_reach_the_patch_and_no_one_else(
    tiny_client: TestClient, tiny_settings: Settings, world: dict[str, District]
) -> None:
    a, b = world["A"], world["B"]
    start = horizon(tiny_settings)

    def dispatch(c: psycopg.Connection) -> int:
        row = c.execute(
            "INSERT INTO twin.task (title, area_id) VALUES ('stream test task', %s) RETURNING id",
            (a.patch,),
        ).fetchone()
        assert row is not None
        c.execute(
            "INSERT INTO twin.task_transition (task_id, from_state, to_state, actor)"
            " VALUES (%s, NULL, 'open', 'test'), (%s, 'open', 'accepted', 'test')",
            (row[0], row[0]),
        )
        return int(row[0])

    task_id = write(tiny_settings, dispatch)
    got_a = [t for _, t in of_kind(events(tiny_client, headers=a.headers, since=start, timeout=3),
                                   "task") if t["task_id"] == task_id]  # fmt: skip
    assert [(t["from"], t["to"]) for t in got_a] == [(None, "open"), ("open", "accepted")]
    assert got_a[0]["task"]["area"]["id"] == a.patch
    got_b = events(tiny_client, headers=b.headers, since=start, timeout=3)
    assert task_id not in {t["task_id"] for _, t in of_kind(got_b, "task")}


def wait_for(got: list[tuple[str | None, str, Any]], ids: set[int], seconds: float) -> bool:
    """Whether alerts ``ids`` all arrived in ``got`` within ``seconds`` (polled)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if ids <= {x["id"] for _, x in of_kind(list(got), "alert")}:
            return True
        time.sleep(0.05)
    return False


def other_database(settings: Settings) -> str:
    """The URL of another database of the same cluster (``postgres``)."""
    info = psycopg.conninfo.conninfo_to_dict(settings.database_url)
    return psycopg.conninfo.make_conninfo(**{**info, "dbname": "postgres"})


def test_a_long_write_transaction_elsewhere_holds_no_event_back(
    tiny_client: TestClient, tiny_settings: Settings, world: dict[str, District]
) -> None:
    """A bulk load in another database of the cluster, and a long ingest in this one, hold
    transaction ids for minutes; an alert committed meanwhile reaches the reader at once."""
    a = world["A"]
    start = horizon(tiny_settings)
    holders = [psycopg.connect(tiny_settings.database_url), psycopg.connect(other_database(
        tiny_settings))]  # fmt: skip
    try:
        held = []
        for h in holders:
            row = h.execute("SELECT (pg_current_xact_id()::text)::bigint").fetchone()
            assert row is not None
            held.append(int(row[0]))
        got: list[tuple[str | None, str, Any]] = []
        t = threading.Thread(target=lambda: events(tiny_client, headers=a.headers, since=start,
                                                   timeout=6, into=got))  # fmt: skip
        t.start()
        alert = write(tiny_settings, lambda c: add_alert(c, a, "during-load"))
        arrived = wait_for(got, {alert}, 5.0)
        # Both holders were still running then (they end below), below the alert's own
        # transaction: a horizon (the oldest running transaction) would have held it back.
        with psycopg.connect(tiny_settings.database_url) as c:
            row = c.execute(
                "SELECT (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint,"
                " (SELECT tx FROM twin.alert WHERE id = %s), bool_or(pg_visible_in_snapshot("
                "x::text::xid8, pg_current_snapshot())) FROM unnest(%s::bigint[]) x",
                (alert, held),
            ).fetchone()
        assert row is not None and row[2] is False
        assert row[0] <= min(held) and max(held) < row[1]
        assert arrived, "the alert waited for the long transactions"
        t.join(10)
    finally:
        for h in holders:
            h.rollback()
            h.close()
    write(tiny_settings, lambda c: c.execute("DELETE FROM twin.alert WHERE id = %s", (alert,)))


def test_resume_misses_nothing_when_commits_come_out_of_order(
    tiny_client: TestClient, tiny_settings: Settings, world: dict[str, District]
) -> None:
    a = world["A"]
    start = horizon(tiny_settings)
    # The first transaction starts (and takes its transaction id) first but commits last.
    first = psycopg.connect(tiny_settings.database_url)
    early = add_alert(first, a, "early")
    late = write(tiny_settings, lambda c: add_alert(c, a, "late"))
    got: list[tuple[str | None, str, Any]] = []

    def listen() -> None:
        events(tiny_client, headers=a.headers, since=start, timeout=20, into=got)

    t = threading.Thread(target=listen)
    t.start()
    try:
        # The later commit arrives at once; the earlier transaction, still open, holds it not.
        assert wait_for(got, {late}, 10.0)
        assert early not in {x["id"] for _, x in of_kind(list(got), "alert")}
        late_id = next(i for i, x in of_kind(list(got), "alert") if x["id"] == late)
        assert late_id is not None
        first.commit()
        assert wait_for(got, {early}, 10.0)
    finally:
        first.close()
        t.join(25)
    ours = [(i, x["id"]) for i, x in of_kind(got, "alert") if x["id"] in (early, late)]
    assert [x for _, x in ours] == [late, early]
    # Resuming after the later event gives the earlier one, once; after it, nothing of ours.
    again = events(tiny_client, headers={**a.headers, "Last-Event-ID": late_id}, timeout=2)
    assert [x["id"] for _, x in of_kind(again, "alert") if x["id"] in (early, late)] == [early]
    early_id = ours[1][0]
    assert early_id is not None
    after = events(tiny_client, headers={**a.headers, "Last-Event-ID": early_id}, timeout=2)
    assert not [x for _, x in of_kind(after, "alert") if x["id"] in (early, late)]


def test_a_client_that_leaves_inside_a_batch_resumes_exactly(
    tiny_client: TestClient, tiny_settings: Settings, world: dict[str, District]
) -> None:
    """Five alerts in one transaction come in one read; a client that closes after each event
    (``?limit=1``) and resumes from its id gets them all, each once, in order."""
    a = world["A"]
    start = horizon(tiny_settings)
    mine = write(tiny_settings, lambda c: [add_alert(c, a, f"batch{n}") for n in range(5)])
    seen: list[int] = []
    cursor = start
    for _ in range(50):
        got = of_kind(events(tiny_client, headers=a.headers, since=cursor, limit=1, timeout=2),
                      "alert")  # fmt: skip
        if not got:
            break
        event_id, data = got[-1]
        assert event_id is not None
        cursor = event_id
        if data["id"] in mine:
            seen.append(data["id"])
    assert seen == sorted(mine)
    write(tiny_settings, lambda c: c.execute("DELETE FROM twin.alert WHERE id = ANY(%s)", (mine,)))


def test_a_changed_alert_comes_again_with_its_new_status(
    tiny_client: TestClient, tiny_settings: Settings, world: dict[str, District]
) -> None:
    a = world["A"]
    start = horizon(tiny_settings)
    alert = write(tiny_settings, lambda c: add_alert(c, a, "acked"))
    write(
        tiny_settings,
        lambda c: c.execute(
            "UPDATE twin.alert SET status = 'acknowledged', acknowledged_at = now() WHERE id = %s",
            (alert,),
        ),
    )
    got = events(tiny_client, headers=a.headers, since=start, timeout=3)
    # one event per committed change; the row is read as it is now
    statuses = [x["status"] for _, x in of_kind(got, "alert") if x["id"] == alert]
    assert statuses == ["acknowledged"]
    write(
        tiny_settings,
        lambda c: c.execute("UPDATE twin.alert SET status = 'resolved', resolved_at = now()"
                            " WHERE id = %s", (alert,)),
    )  # fmt: skip
    last = [i for i, x in of_kind(got, "alert") if x["id"] == alert][-1]
    assert last is not None
    got = events(tiny_client, headers={**a.headers, "Last-Event-ID": last}, timeout=3)
    assert [x["status"] for _, x in of_kind(got, "alert") if x["id"] == alert] == ["resolved"]


def test_tile_versions_come_first_and_on_every_bump(
    tiny_client: TestClient, tiny_settings: Settings, world: dict[str, District]
) -> None:
    a = world["A"]
    got: list[tuple[str | None, str, Any]] = []

    def listen() -> None:
        got.extend(events(tiny_client, headers=a.headers, timeout=4))

    t = threading.Thread(target=listen)
    t.start()
    time.sleep(1.5)
    row = write(
        tiny_settings,
        lambda c: c.execute(
            "UPDATE twin.layer_version SET version = version + 1"
            " WHERE layer = (SELECT min(layer) FROM twin.layer_version)"
            " RETURNING layer, version"
        ).fetchone(),
    )
    t.join(10)
    tiles = [d for _, k, d in got if k == "tiles"]
    assert tiles and row[0] in tiles[0]  # the current versions first
    assert any(d.get(row[0]) == row[1] for d in tiles[1:])  # then the bump


@pytest.mark.parametrize(
    ("headers", "params", "name"),
    [
        ({"Last-Event-ID": "not-an-id"}, {}, "Last-Event-ID"),
        ({}, {"since": "1.7.3"}, "since"),
        ({}, {"since": "99999999999999999999.0.1"}, "since"),
        ({}, {"since": "1000-5-7"}, "since"),  # a running transaction past xmax
        ({}, {"since": "1000-5-2,1"}, "since"),  # not ascending
        ({}, {"since": "1000-5/1000-3/1001.0.1"}, "since"),  # the batch before the done one
        ({"Last-Event-ID": "9000000000000000000-0"}, {}, "Last-Event-ID"),  # from the future
        ({}, {"since": "4294967296-0"}, "since"),  # transaction id 0 of epoch 1
    ],
)
def test_a_bad_cursor_is_a_400_naming_it(
    tiny_client: TestClient, headers: dict[str, str], params: dict[str, str], name: str
) -> None:
    r = tiny_client.get("/api/stream", headers=headers, params=params)
    assert r.status_code == 400
    assert name in r.text


def test_the_public_gets_readings_only_where_it_gets_sensorthings(tiny_settings: Settings) -> None:
    """Where the public is cleared for general data only (the default), the stream with
    readings is refused to it, as ``/sta/v1.1`` and ``/api/live`` are."""
    from twin.api.app import create_app

    closed = tiny_settings.model_copy(update={"public_clearance": "general"})
    with TestClient(create_app(closed)) as client:
        for path in ("/api/stream?readings=true&timeout=1", "/api/live?limit=1",
                     "/sta/v1.1/Observations", "/sta/v1.1/Datastreams"):  # fmt: skip
            r = client.get(path)
            assert r.status_code == 401, (path, r.status_code)


@pytest.mark.parametrize("caller", ["A", "public"])
def test_readings_follow_the_sensorthings_rule_and_never_more(
    tiny_client: TestClient, tiny_settings: Settings, world: dict[str, District], caller: str
) -> None:
    """The rule for readings is the rest of the API's: ``twin.sensor`` and ``twin.observation``
    carry no admin area and no row-level security, and every caller cleared for important
    data (a viewer or above, scoped or not; the public where TWIN_PUBLIC_CLEARANCE=important,
    as on this demo) reads every Datastream at ``/sta/v1.1``, ``/api/live`` and
    ``/api/history``.

    The attack: a caller (a district's scoped operator; the public) holds the stream open
    with readings while a device posts. Every reading it receives is one ``/sta/v1.1`` shows
    that same caller, with the same values and no field more."""
    from twin.sense.devices import add_device

    headers = world["A"].headers if caller == "A" else {}
    name = f"stream-dev-{time.monotonic_ns()}"

    def make(c: psycopg.Connection) -> tuple[int, str]:
        row = c.execute("SELECT id FROM twin.sensor ORDER BY id LIMIT 1").fetchone()
        assert row is not None, "the tiny demo has sensors"
        return int(row[0]), add_device(c, name, [int(row[0])])[1]

    ds, token = write(tiny_settings, make)
    posted: list[int] = []

    def post_later() -> None:
        time.sleep(1.0)
        for v in (1.25, 2.5):
            r = tiny_client.post(f"/sta/v1.1/Datastreams({ds})/Observations", json={"result": v},
                                 headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            assert r.status_code == 201, r.text
            posted.append(int(r.headers["Location"].rsplit("(", 1)[1].rstrip(")")))

    poster = threading.Thread(target=post_later)
    poster.start()
    try:
        got = events(tiny_client, headers=headers, readings="true", timeout=4)
        poster.join()
        readings = [d for _, d in of_kind(got, "observation")]
        assert sorted(d["@iot.id"] for d in readings if d["@iot.id"] in posted) == sorted(posted)
        for d in readings:
            shown = tiny_client.get(f"/sta/v1.1/Observations({d['@iot.id']})", headers=headers)
            assert shown.status_code == 200, shown.text
            sta, rest = shown.json(), {k: v for k, v in d.items() if k != "Datastream"}
            assert set(rest) <= set(sta), set(rest) - set(sta)
            assert {k: sta[k] for k in rest} == rest
            of = tiny_client.get(f"/sta/v1.1/Observations({d['@iot.id']})/Datastream",
                                 headers=headers)  # fmt: skip
            assert of.status_code == 200 and d["Datastream"] == {"@iot.id": of.json()["@iot.id"]}
    finally:
        poster.join()

        def clean(c: psycopg.Connection) -> None:
            c.execute("DELETE FROM twin.observation WHERE id = ANY(%s)", (posted,))
            c.execute("DELETE FROM twin.app_user WHERE name = %s", (name,))

        write(tiny_settings, clean)
