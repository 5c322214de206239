"""Scope leaks found by probing the demo (issue 24, section 2), each pinned by a test.

On the tiny demo twin (alerts raised, tasks dispatched, risk computed), with an operator
scoped to each of two districts. Expected sets come from direct SQL on the admin hierarchy
(tests/api/scope_world.py), never from the API under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from twin.access import tokens as auth
from twin.access.principal import Principal, act_as
from twin.access.tokens import add_user, set_disabled
from twin.alerts.evaluate import evaluate, evaluate_on
from twin.alerts.rules import load_rules
from twin.api.app import create_app
from twin.cli import app as cli_app
from twin.settings import Settings

from .scope_world import District, ids_in, make_world, sql, tiles_over_city

PEER = "203.0.113.7"  # TEST-NET-3: the address the test client connects from


@pytest.fixture(scope="module")
def world(tiny_settings: Settings) -> dict[str, District]:
    return make_world(tiny_settings, "leak")


@pytest.fixture(scope="module")
def client(tiny_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(tiny_settings), client=(PEER, 50000)) as c:
        yield c


def _alerts(settings: Settings, d: District) -> dict[int, tuple[Any, ...]]:
    rows = sql(
        settings,
        "SELECT id, hits, last_seen, status, level, area_id, escalation, value FROM twin.alert"
        " WHERE area_id IN (SELECT twin.area_subtree(%s)) ORDER BY id",
        (d.id,),
    )
    return {r[0]: r for r in rows}


def test_evaluating_alerts_touches_only_the_callers_alerts(
    tiny_settings: Settings, client: TestClient, world: dict[str, District]
) -> None:
    a, b = world["A"], world["B"]
    before_a, before_b = _alerts(tiny_settings, a), _alerts(tiny_settings, b)
    assert before_b, "district B has alerts to leave alone"
    r = client.post("/api/alerts/evaluate", headers=a.headers)
    assert r.status_code == 200, r.text
    assert _alerts(tiny_settings, b) == before_b  # hits, last_seen, status: all as they were
    after_a = _alerts(tiny_settings, a)
    # The evaluation did run for A: its alerts whose rule still holds were seen again.
    assert any(after_a[i][2] != before_a[i][2] for i in before_a if i in after_a)
    # And the same by B for B's alerts, leaving A's.
    r = client.post("/api/alerts/evaluate", headers=b.headers)
    assert r.status_code == 200
    assert _alerts(tiny_settings, a) == after_a
    rows = sql(
        tiny_settings,
        "SELECT host(client) FROM twin.audit_log l JOIN twin.app_user u ON u.id = l.user_id"
        " WHERE u.name = %s AND l.action = 'alerts.evaluate'",
        (a.user,),
    )
    assert rows == [(PEER,)]


def _small_cell(settings: Settings, d: District) -> tuple[str, int]:
    """A cell of ``d`` whose population is 1..k-1 (the public sees it suppressed)."""
    k = settings.suppression_k
    rows = sql(
        settings,
        "SELECT twin.h3_to_hex(cell), population FROM twin.cell_stats"
        " WHERE area_id = ANY(%s) AND population BETWEEN 1 AND %s ORDER BY res DESC, cell",
        (list(d.areas), k - 1),
    )
    assert rows, f"district {d.code} has a cell with a small population"
    return rows[0][0], rows[0][1]


def test_cell_cards_outside_the_scope_are_the_public_view(
    tiny_settings: Settings, client: TestClient, world: dict[str, District]
) -> None:
    a, b = world["A"], world["B"]
    h3, population = _small_cell(tiny_settings, b)
    public = client.get(f"/api/cells/{h3}").json()
    assert public["cell"]["population"] is None
    theirs = client.get(f"/api/cells/{h3}", headers=b.headers).json()
    assert theirs["cell"]["population"] == population  # within B's scope: the raw count
    mine = client.get(f"/api/cells/{h3}", headers=a.headers).json()
    assert mine["cell"] == public["cell"]
    assert {r["layer"] for r in mine["risks"]} == {r["layer"] for r in public["risks"]}
    assert "elderly_alone" not in {r["layer"] for r in mine["risks"]}
    assert mine["hazard_sites"] == [] and mine["open_events"] == []
    # The bbox listing: B's small cells are suppressed for A, raw for B.
    res = int(sql(tiny_settings, "SELECT twin.h3_resolution(twin.h3_from_hex(%s))", (h3,))[0][0])
    bbox = ",".join(str(v) for v in _bounds(tiny_settings))
    q = f"/api/cells?bbox={bbox}&res={res}&metric=population"
    as_public = {c["h3"]: c["value"] for c in client.get(q).json()["cells"]}
    as_a = {c["h3"]: c["value"] for c in client.get(q, headers=a.headers).json()["cells"]}
    as_b = {c["h3"]: c["value"] for c in client.get(q, headers=b.headers).json()["cells"]}
    assert as_public[h3] is None and as_a[h3] is None and as_b[h3] == population
    outside_a = set(as_public) - a.cells.get(res, set())
    assert {h: as_a[h] for h in outside_a} == {h: as_public[h] for h in outside_a}


def _bounds(settings: Settings) -> tuple[float, ...]:
    from .scope_world import city_bounds

    return city_bounds(settings)


def test_cockpits_outside_the_scope_are_403(client: TestClient, world: dict[str, District]) -> None:
    a, b = world["A"], world["B"]
    q = f"/api/cockpit?level=district&area={b.code}"
    assert client.get(q).status_code == 200  # the public cockpit of any area
    r = client.get(q, headers=a.headers)
    assert r.status_code == 403 and "scope" in r.json()["detail"]
    assert client.get("/api/cockpit?level=city", headers=a.headers).status_code == 403
    assert client.get(q, headers=b.headers).status_code == 200
    mine = client.get(f"/api/cockpit?level=district&area={a.code}", headers=a.headers)
    assert mine.status_code == 200


def test_core_layers_and_hazard_sites_stay_in_scope(
    tiny_settings: Settings, client: TestClient, world: dict[str, District]
) -> None:
    a, b = world["A"], world["B"]
    for res in sorted(a.cells):
        r = client.get(f"/api/risk?layer=elderly_alone&res={res}", headers=a.headers)
        if r.status_code == 400:  # not scored at this resolution
            continue
        got = {c["h3"] for c in r.json()["cells"]}
        scored = {
            h for (h,) in sql(tiny_settings,
                              "SELECT twin.h3_to_hex(cell) FROM twin.risk_score"
                              " WHERE layer_id = 'elderly_alone' AND res = %s", (res,))
        }  # fmt: skip
        assert got == scored & a.cells[res], res
    counts = {
        lyr["id"]: lyr["cells"]
        for lyr in client.get("/api/layers", headers=a.headers).json()["layers"]
    }
    mine = sql(
        tiny_settings,
        "SELECT count(*) FROM twin.risk_score r JOIN twin.cell_stats s USING (res, cell)"
        " WHERE r.layer_id = 'elderly_alone' AND r.res = 9 AND s.area_id = ANY(%s)",
        (list(a.areas),),
    )[0][0]
    assert sum(counts["elderly_alone"].values()) == mine
    # Hazard sites: the collection, one item of B, the cell card of B's site, the tiles.
    sites_a, sites_b = (
        ids_in(tiny_settings, "hazard_site", a),
        ids_in(tiny_settings, "hazard_site", b),
    )
    assert sites_a and sites_b
    items = client.get("/collections/hazard_sites/items?limit=1000", headers=a.headers).json()
    assert {int(f["id"]) for f in items["features"]} == sites_a
    other = min(sites_b)
    assert (
        client.get(f"/collections/hazard_sites/items/{other}", headers=a.headers).status_code == 404
    )
    assert client.get(f"/collections/hazard_sites/items/{other}").status_code == 200
    z = 14
    seen_sites: set[int] = set()
    seen_cells: set[str] = set()
    for x, y in tiles_over_city(tiny_settings, z):
        r = client.get(f"/tiles/hazard_sites/{z}/{x}/{y}.mvt", headers=a.headers)
        if r.status_code == 200:
            layer = mapbox_vector_tile.decode(r.content).get("hazard_sites", {"features": []})
            seen_sites |= {int(f["id"]) for f in layer["features"]}
        r = client.get(f"/tiles/risk_elderly_alone/{z}/{x}/{y}.mvt", headers=a.headers)
        if r.status_code == 200:
            layer = mapbox_vector_tile.decode(r.content)["risk_elderly_alone"]
            seen_cells |= {f["properties"]["h3"] for f in layer["features"]}
    assert seen_sites == sites_a
    assert seen_cells and seen_cells <= a.all_cells()


def test_core_tile_reads_are_audited_with_the_client(
    tiny_settings: Settings, client: TestClient, world: dict[str, District]
) -> None:
    a = world["A"]
    # What the module's server has read so far is written before counting starts.
    client.portal.call(client.app.state.audit.flush, client.app.state.pool, "twin_api")  # type: ignore[attr-defined]
    z = 14
    tiles = tiles_over_city(tiny_settings, z)[:3]
    start = sql(tiny_settings, "SELECT coalesce(max(id), 0) FROM twin.audit_log")[0][0]
    behind_proxy = tiny_settings.model_copy(update={"trusted_proxies": f"{PEER}/32"})
    with TestClient(create_app(behind_proxy), client=(PEER, 50000)) as c:
        for x, y in tiles:
            r = c.get(f"/tiles/risk_elderly_alone/{z}/{x}/{y}.mvt", headers={
                **a.headers, "X-Forwarded-For": "192.0.2.44, 198.51.100.9"})  # fmt: skip
            assert r.status_code in (200, 204)
        written = c.portal.call(c.app.state.audit.flush, c.app.state.pool, "twin_api")  # type: ignore[attr-defined]
        assert written == len(tiles)
    rows = sql(
        tiny_settings,
        "SELECT l.resource, host(l.client), l.detail->>'z', l.detail->>'x', l.detail->>'y'"
        " FROM twin.audit_log l JOIN twin.app_user u ON u.id = l.user_id"
        " WHERE u.name = %s AND l.action = 'layer.read' AND l.resource LIKE 'tiles/%%'"
        " AND l.id > %s",
        (a.user, start),
    )
    # The last hop before the trusted proxy is the client.
    assert sorted(rows) == sorted(
        ("tiles/risk_elderly_alone", "198.51.100.9", str(z), str(x), str(y)) for x, y in tiles
    )
    # Without a trusted proxy the header is ignored; the peer is the client. Rows still
    # pending when the server stops are written then.
    start = sql(tiny_settings, "SELECT coalesce(max(id), 0) FROM twin.audit_log")[0][0]
    with TestClient(create_app(tiny_settings), client=(PEER, 50000)) as c:
        x, y = tiles[0]
        c.get(f"/tiles/risk_elderly_alone/{z}/{x}/{y}.mvt",
              headers={**a.headers, "X-Forwarded-For": "198.51.100.9"})  # fmt: skip
        r = c.patch(f"/api/tasks/{_a_task(tiny_settings, a)}", json={"priority": 3},
                    headers={**a.headers, "X-Forwarded-For": "198.51.100.9"})  # fmt: skip
        assert r.status_code == 200, r.text
    clients = sql(
        tiny_settings,
        "SELECT l.action, host(l.client) FROM twin.audit_log l"
        " JOIN twin.app_user u ON u.id = l.user_id WHERE u.name = %s"
        " AND (l.resource LIKE 'tiles/%%' OR l.action = 'task.update') AND l.id > %s",
        (a.user, start),
    )
    assert sorted(clients) == [("layer.read", PEER), ("task.update", PEER)]


def _a_task(settings: Settings, d: District) -> int:
    tasks = ids_in(settings, "task", d)
    if tasks:
        return min(tasks)
    return int(sql(settings, "INSERT INTO twin.task (title, state, priority, area_id)"
                             " VALUES ('scope test', 'open', 2, %s) RETURNING id",
                   (d.patch,))[0][0])  # fmt: skip


def test_revoking_takes_effect_at_once_in_the_same_process(
    tiny_settings: Settings, client: TestClient
) -> None:
    with psycopg.connect(tiny_settings.database_url) as c:
        _, token = add_user(c, "leaver-cli", "viewer")
        c.commit()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/me", headers=headers).status_code == 200  # now cached
    env = {"TWIN_DATABASE_URL": tiny_settings.database_url,
           "TWIN_DATA_DIR": str(tiny_settings.data_dir)}  # fmt: skip
    out = CliRunner().invoke(cli_app, ["users", "revoke", "leaver-cli"], env=env)
    assert out.exit_code == 0, out.output
    assert client.get("/api/me", headers=headers).status_code == 401  # no wait, no cache flush


def test_revocation_elsewhere_is_bounded_by_the_cache_setting(
    tiny_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(_env_file=None).auth_cache_seconds <= 5  # the documented default bound
    clock = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock[0])
    settings = tiny_settings.model_copy(update={"auth_cache_seconds": 3.0})
    with psycopg.connect(tiny_settings.database_url) as c:
        _, token = add_user(c, "leaver-other", "viewer")
        c.commit()
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings)) as c:
        assert c.get("/api/me", headers=headers).status_code == 200
        # Another process revokes: this one's cache does not know (simulated by leaving the
        # cache alone: the revocation below runs on its own connection, then the cache entry
        # is put back as that other process could not have touched it).
        cached = dict(auth._CACHE)
        with psycopg.connect(tiny_settings.database_url) as conn:
            set_disabled(conn, "leaver-other")
            conn.commit()
        auth._CACHE.update(cached)
        clock[0] += 2.9
        assert c.get("/api/me", headers=headers).status_code == 200  # within the bound
        clock[0] += 0.2
        assert c.get("/api/me", headers=headers).status_code == 401  # past it: looked up again


def test_trusted_proxies_must_be_addresses() -> None:
    assert Settings(_env_file=None).trusted_proxies == ""  # off by default
    ok = Settings(_env_file=None, trusted_proxies="10.0.0.0/8, ::1")
    assert [str(n) for n in ok.trusted_proxy_networks] == ["10.0.0.0/8", "::1/128"]
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(_env_file=None, trusted_proxies="10.0.0.0/8,proxy.local")


def test_a_scoped_evaluation_escalates_no_higher_than_its_scope(
    tiny_settings: Settings, world: dict[str, District]
) -> None:
    """An alert raised at the district and escalated by its district's operator stays with the
    district (the city is outside the scope); an unscoped evaluation then moves it up."""
    rules, errors = load_rules(tiny_settings.rules_dir)
    assert not errors
    base = next(r for r in rules if r.id == "cell_turns_red")
    rule = replace(base, id="scope_escalation", area_level="district", escalate_after=1)
    firing = {
        key: sql(tiny_settings, "SELECT count(*) FROM twin.alert WHERE rule_id = 'cell_turns_red'"
                 " AND area_id IN (SELECT twin.area_subtree(%s))", (d.id,))[0][0]
        for key, d in world.items()
    }  # fmt: skip
    me = world["A"] if firing["A"] else world["B"]
    assert firing[me.key], "a district with red cells"
    who = Principal(name=me.user, role="operator", user_id=1, scope=frozenset(me.areas))

    def evaluate_as_me() -> None:
        with psycopg.connect(tiny_settings.database_url) as c:
            act_as(c, who, tiny_settings.api_db_role)
            evaluate_on(c, [rule])

    def mine() -> list[tuple[Any, ...]]:
        return sql(tiny_settings, "SELECT area_id, escalation, hits FROM twin.alert"
                   " WHERE rule_id = 'scope_escalation' ORDER BY id")  # fmt: skip

    evaluate_as_me()
    first = mine()
    assert first and {a for a, _, _ in first} == {me.id}  # raised only in its own district
    evaluate_as_me()
    second = mine()
    assert [(a, e, h) for a, e, h in second] == [(me.id, 1, 2)] * len(first)
    evaluate(tiny_settings.database_url, [rule])  # a local run: the whole city
    city = sql(tiny_settings, "SELECT id FROM twin.admin_area WHERE level = 'city'")[0][0]
    assert {(a, e) for a, e, _ in mine()[: len(first)]} == {(city, 2)}
