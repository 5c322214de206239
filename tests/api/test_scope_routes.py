"""Every route and every tile layer, called as two district-scoped operators and as the public:
nothing outside the caller's scope comes back, and nothing outside it changes.

``ROUTES`` names, for each operation of the app's OpenAPI schema, how to check it; a route
added without an entry fails :func:`test_every_route_has_a_scope_check`. Tile layers are
checked from the layer registry (``twin.tiles.catalog.LAYERS``, the risk layers, the run
layers), each by a rule in ``TILE_CHECKS``, ``RISK_CHECKS`` or ``RUN_CHECKS``; a new layer
or data class without a rule fails too.

What lies in a district comes from SQL on the admin hierarchy (tests/api/scope_world.py).
"Outside the scope" means: records (events, hazard sites, tasks, alerts) of other areas do
not come back at all; core layers have no cell outside it; everything else outside it is
exactly what the public gets (people counts suppressed as for the public). Before and after
each call, every alert, task, task transition and event outside the caller's scope is read:
they must be unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from twin.api.app import create_app
from twin.risk.layers import risk_tiles
from twin.settings import Settings
from twin.tiles.catalog import LAYERS, TileLayer
from twin.tiles.runs import RUN_KIND, run_tile_layer

from .scope_world import District, city_bounds, ids_in, make_world, sql, tiles_over_city

Caller = District | None  # None: the public (no token)


@dataclass
class Ctx:
    client: TestClient
    settings: Settings
    world: dict[str, District]

    def get(self, who: Caller, path: str, **kw: Any) -> Response:
        return self.client.get(path, headers=who.headers if who else {}, **kw)

    def send(self, method: str, who: Caller, path: str, **kw: Any) -> Response:
        return self.client.request(method, path, headers=who.headers if who else {}, **kw)

    def other(self, who: District) -> District:
        return self.world["B" if who.key == "A" else "A"]

    def runs(self, kind: str) -> list[int]:
        return [r[0] for r in sql(self.settings, "SELECT id FROM twin.sim_run WHERE kind = %s"
                                  " AND status = 'succeeded' ORDER BY id", (kind,))]  # fmt: skip

    def wait_for_jobs(self) -> None:
        """Until the simulation worker (one thread) has done everything queued, the risk
        refresh and alert evaluation after each run included."""
        self.client.app.state.jobs.submit(lambda: None).result(timeout=900)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def ctx(tiny_settings: Settings) -> Iterator[Ctx]:
    world = make_world(tiny_settings, "routes")
    with TestClient(create_app(tiny_settings)) as c:
        yield Ctx(c, tiny_settings, world)


# ------------------------------------------------------------------------------- helpers
def ok(r: Response, *codes: int) -> Response:
    assert r.status_code in (codes or (200,)), (r.request.url, r.status_code, r.text[:300])
    return r


def outside(rows: dict[str, Any], who: District, res: int) -> dict[str, Any]:
    """The entries (keyed by hex cell id) of cells outside ``who``'s scope."""
    mine = who.cells.get(res, set())
    return {h: v for h, v in rows.items() if h not in mine}


def records_in_scope(ctx: Ctx, who: Caller, table: str, ids: set[int]) -> None:
    if who is not None:
        assert ids <= ids_in(ctx.settings, table, who), (
            table,
            ids - ids_in(ctx.settings, table, who),
        )


def card_cells(ctx: Ctx, d: District) -> set[str]:
    """Cells of ``d`` worth a card: the one with the smallest positive population, and those
    with the most hazard sites and open events (coarse and fine)."""
    rows = sql(ctx.settings, """
        (SELECT twin.h3_to_hex(cell) FROM twin.cell_stats WHERE area_id = ANY(%(a)s)
         AND population > 0 ORDER BY population, res DESC, cell LIMIT 1)
        UNION (SELECT twin.h3_to_hex(cell) FROM twin.cell_stats WHERE area_id = ANY(%(a)s)
         ORDER BY hazard_sites DESC, res DESC, cell LIMIT 1)
        UNION (SELECT twin.h3_to_hex(cell) FROM twin.cell_stats WHERE area_id = ANY(%(a)s)
         ORDER BY events_open DESC, res, cell LIMIT 1)""", {"a": list(d.areas)})  # fmt: skip
    return {r[0] for r in rows}


def bbox(ctx: Ctx) -> str:
    return ",".join(str(v) for v in city_bounds(ctx.settings))


# ------------------------------------------------------------------------ route checks
def check_static(path: str, *codes: int) -> Callable[[Ctx, Caller], None]:
    """Routes that carry no record, cell or count of any area: the same for every caller."""

    def check(ctx: Ctx, who: Caller) -> None:
        ok(ctx.get(who, path), *(codes or (200,)))

    return check


def check_cell_card(ctx: Ctx, who: Caller) -> None:
    for h3 in set().union(*(card_cells(ctx, d) for d in ctx.world.values())):
        card = ok(ctx.get(who, f"/api/cells/{h3}")).json()
        public = ok(ctx.get(None, f"/api/cells/{h3}")).json()
        records_in_scope(ctx, who, "event", {e["id"] for e in card["open_events"]})
        records_in_scope(ctx, who, "hazard_site", {s["id"] for s in card["hazard_sites"]})
        records_in_scope(ctx, who, "task", {t["id"] for t in card["tasks"]["tasks"]})
        if who is not None and h3 not in who.all_cells():
            assert card["cell"] == public["cell"]
            assert card["risks"] == public["risks"]


def check_cells(ctx: Ctx, who: Caller) -> None:
    for res in ctx.settings.h3_resolutions:
        q = f"/api/cells?bbox={bbox(ctx)}&res={res}&metric=population"
        got = {c["h3"]: c["value"] for c in ok(ctx.get(who, q)).json()["cells"]}
        public = {c["h3"]: c["value"] for c in ok(ctx.get(None, q)).json()["cells"]}
        if who is not None:
            assert outside(got, who, res) == outside(public, who, res), res


def check_tile_json(ctx: Ctx, who: Caller) -> None:
    for name in all_tile_layers(ctx):
        ok(ctx.get(who, f"/tiles/{name}.json"), 200, 401, 403)


def all_tile_layers(ctx: Ctx) -> dict[str, TileLayer]:
    layers: dict[str, TileLayer] = dict(LAYERS)
    layers.update(risk_tiles(ctx.settings))
    for kind in ("flood", "traffic"):
        for run in ctx.runs(kind):
            for prefix, k in RUN_KIND.items():
                if k == kind:
                    found = run_tile_layer(f"{prefix}_{run}")
                    assert found is not None
                    layers[found[2].id] = found[2]
    return layers


def _tile(ctx: Ctx, who: Caller, lyr: TileLayer, z: int, x: int, y: int) -> list[dict[str, Any]]:
    r = ok(ctx.get(who, f"/tiles/{lyr.id}/{z}/{x}/{y}.mvt"), 200, 204, 401, 403)
    if r.status_code != 200:
        return []
    feats: list[dict[str, Any]] = mapbox_vector_tile.decode(r.content)[lyr.id]["features"]
    return feats


def tile_same_as_public(ctx: Ctx, who: Caller, lyr: TileLayer, z: int, x: int, y: int) -> None:
    got = _tile(ctx, who, lyr, z, x, y)
    if who is not None:
        public = _tile(ctx, None, lyr, z, x, y)
        key = lambda f: (f["id"], sorted(f["properties"].items()))  # noqa: E731
        assert sorted(map(key, got)) == sorted(map(key, public)), lyr.id


def tile_records_in_scope(ctx: Ctx, who: Caller, lyr: TileLayer, z: int, x: int, y: int) -> None:
    records_in_scope(ctx, who, lyr.table, {int(f["id"]) for f in _tile(ctx, who, lyr, z, x, y)})


def tile_cells_in_scope(ctx: Ctx, who: Caller, lyr: TileLayer, z: int, x: int, y: int) -> None:
    got = {f["properties"]["h3"] for f in _tile(ctx, who, lyr, z, x, y)}
    if who is None:
        assert not got  # core data is never public
    else:
        assert got <= who.all_cells(), (lyr.id, got - who.all_cells())


TileCheck = Callable[[Ctx, Caller, TileLayer, int, int, int], None]
#: Every layer of the catalog and how its tiles are checked.
TILE_CHECKS: dict[str, TileCheck] = {
    "buildings": tile_same_as_public,
    "parcels": tile_same_as_public,
    "roads": tile_same_as_public,
    "events": tile_records_in_scope,
    "hazard_sites": tile_records_in_scope,
    "admin_areas": tile_same_as_public,
    "cells": tile_same_as_public,
}
#: Risk layers by data class.
RISK_CHECKS: dict[str, TileCheck] = {
    "general": tile_same_as_public,
    "important": tile_same_as_public,
    "core": tile_cells_in_scope,
}
#: Run layers by kind of layer.
RUN_CHECKS: dict[str, TileCheck] = {
    "flood": tile_same_as_public,
    "flood_roads": tile_same_as_public,
    "traffic": tile_same_as_public,
}


def tile_check(lyr: TileLayer) -> TileCheck:
    if lyr.id in LAYERS:
        return TILE_CHECKS[lyr.id]
    if lyr.run_id is not None:
        return RUN_CHECKS[lyr.id.rsplit("_", 1)[0]]
    return RISK_CHECKS[lyr.label]


def check_tiles(ctx: Ctx, who: Caller) -> None:
    for lyr in all_tile_layers(ctx).values():
        z = max(13, lyr.minzoom)
        if z > lyr.maxzoom:
            continue
        for x, y in tiles_over_city(ctx.settings, z):
            tile_check(lyr)(ctx, who, lyr, z, x, y)


def check_collection_items(ctx: Ctx, who: Caller) -> None:
    for lyr in LAYERS.values():
        if not lyr.feature_collection:
            continue
        # Plain, and with a CQL2 filter that keeps every row: a filter never widens the scope.
        for q in (
            f"/collections/{lyr.id}/items?limit=10000",
            f"/collections/{lyr.id}/items?limit=10000&filter=NOT%20(geometry%20IS%20NULL)",
        ):
            got = ok(ctx.get(who, q), 200, 401, 403)
            if got.status_code != 200:
                continue
            ids = {int(f["id"]) for f in got.json()["features"]}
            if TILE_CHECKS[lyr.id] is tile_records_in_scope:
                records_in_scope(ctx, who, lyr.table, ids)
            elif who is not None:
                assert got.json()["features"] == ctx.get(None, q).json()["features"], lyr.id


def check_queryables(ctx: Ctx, who: Caller) -> None:
    """Queryables carry no record: each caller gets the public's, or 401/403 for a collection
    above its clearance."""
    for lyr in LAYERS.values():
        if not lyr.feature_collection:
            continue
        got = ok(ctx.get(who, f"/collections/{lyr.id}/queryables"), 200, 401, 403)
        public = ctx.get(None, f"/collections/{lyr.id}/queryables")
        if got.status_code == 200 and public.status_code == 200:
            assert got.json() == public.json(), lyr.id


def check_collection_item(ctx: Ctx, who: Caller) -> None:
    for lyr in LAYERS.values():
        if not lyr.feature_collection:
            continue
        if TILE_CHECKS[lyr.id] is tile_records_in_scope:
            for d in ctx.world.values():
                fid = min(ids_in(ctx.settings, lyr.table, d))
                r = ok(ctx.get(who, f"/collections/{lyr.id}/items/{fid}"), 200, 404)
                if who is not None:
                    assert (r.status_code == 200) == (d is who), (lyr.id, fid)
        else:
            first = sql(ctx.settings, f"SELECT min(id) FROM twin.{lyr.table}")[0][0]
            r = ok(ctx.get(who, f"/collections/{lyr.id}/items/{first}"))
            assert r.json() == ctx.get(None, f"/collections/{lyr.id}/items/{first}").json()


def check_start_flood(ctx: Ctx, who: Caller) -> None:
    body = {"duration_min": 5, "after_min": 0, "return_period_years": 50}
    ok(ctx.send("POST", who, "/api/simulations/flood", json=body), 202)
    ctx.wait_for_jobs()


def check_start_traffic(ctx: Ctx, who: Caller) -> None:
    body = {"events": False, "max_iter": 3}
    ok(ctx.send("POST", who, "/api/simulations/traffic", json=body), 202)
    ctx.wait_for_jobs()


def check_execute(ctx: Ctx, who: Caller) -> None:
    """OGC API Processes: the same start as /api/simulations/flood (runs are the city's)."""
    body = {"inputs": {"duration_min": 5, "after_min": 0, "return_period_years": 50}}
    headers = {**(who.headers if who else {}), "Prefer": "respond-async"}
    r = ok(ctx.client.post("/processes/flood/execution", json=body, headers=headers), 201)
    assert r.json()["processID"] == "flood"
    ctx.wait_for_jobs()


def check_jobs(ctx: Ctx, who: Caller) -> None:
    got = ok(ctx.get(who, "/jobs?limit=500")).json()
    assert got == ok(ctx.get(None, "/jobs?limit=500")).json()


def check_job(ctx: Ctx, who: Caller) -> None:
    for run in ctx.runs("flood") + ctx.runs("traffic"):
        for path in (f"/jobs/{run}", f"/jobs/{run}/results"):
            assert ok(ctx.get(who, path)).json() == ok(ctx.get(None, path)).json()


def check_dismiss(ctx: Ctx, who: Caller) -> None:
    """Runs are the city's: neither a district's user nor the public may dismiss one; the
    job stays as it was."""
    for run in ctx.runs("flood") + ctx.runs("traffic"):
        before = ok(ctx.get(None, f"/jobs/{run}")).json()
        r = ctx.send("DELETE", who, f"/jobs/{run}")
        assert r.status_code == 403, (run, r.text)
        assert ok(ctx.get(None, f"/jobs/{run}")).json() == before


def check_runs(ctx: Ctx, who: Caller) -> None:
    got = ok(ctx.get(who, "/api/simulations?limit=500")).json()["runs"]
    assert got == ok(ctx.get(None, "/api/simulations?limit=500")).json()["runs"]


def check_run(ctx: Ctx, who: Caller) -> None:
    for run in ctx.runs("flood") + ctx.runs("traffic"):
        got = ok(ctx.get(who, f"/api/simulations/{run}")).json()
        assert got == ok(ctx.get(None, f"/api/simulations/{run}")).json()


def check_run_cells(ctx: Ctx, who: Caller) -> None:
    for run in ctx.runs("flood") + ctx.runs("traffic"):
        for res in ctx.settings.h3_resolutions:
            q = f"/api/simulations/{run}/cells?res={res}"
            got = {c["h3"]: c for c in ok(ctx.get(who, q)).json()["cells"]}
            public = {c["h3"]: c for c in ok(ctx.get(None, q)).json()["cells"]}
            if who is not None:
                assert outside(got, who, res) == outside(public, who, res), (run, res)


def check_run_links(ctx: Ctx, who: Caller) -> None:
    for run in ctx.runs("traffic"):
        q = f"/api/simulations/{run}/links?limit=100000"
        assert ok(ctx.get(who, q)).json() == ok(ctx.get(None, q)).json()


def check_run_roads(ctx: Ctx, who: Caller) -> None:
    for run in ctx.runs("flood"):
        q = f"/api/simulations/{run}/roads"
        assert ok(ctx.get(who, q)).json() == ok(ctx.get(None, q)).json()


def check_nowcast(path: str) -> Callable[[Ctx, Caller], None]:
    """The nowcast: depths of water per cell, no people and no scoped record: every caller
    gets what the public gets (404 before the first step)."""

    def check(ctx: Ctx, who: Caller) -> None:
        got = ok(ctx.get(who, path), 200, 404)
        assert got.json() == ok(ctx.get(None, path), 200, 404).json()

    return check


def check_layers(ctx: Ctx, who: Caller) -> None:
    got = {lyr["id"]: lyr for lyr in ok(ctx.get(who, "/api/layers")).json()["layers"]}
    public = {lyr["id"]: lyr for lyr in ok(ctx.get(None, "/api/layers")).json()["layers"]}
    for lid, lyr in got.items():
        if lyr["classification"] == "core":
            assert who is not None
            n = sql(ctx.settings, "SELECT count(*) FROM twin.risk_score r JOIN twin.cell_stats s"
                    " USING (res, cell) WHERE r.layer_id = %s AND r.res = %s AND s.area_id = ANY(%s)",
                    (lid, lyr["res"], list(who.areas)))[0][0]  # fmt: skip
            assert sum(lyr["cells"].values()) == n, lid
        else:
            assert lyr == public[lid]


def check_risk(ctx: Ctx, who: Caller) -> None:
    for lyr in risk_tiles(ctx.settings).values():
        lid = lyr.layer_key
        for res in ctx.settings.h3_resolutions:
            q = f"/api/risk?layer={lid}&res={res}"
            r = ok(ctx.get(who, q), 200, 400, 401, 403)
            if r.status_code != 200:
                continue
            got = {c["h3"]: c for c in r.json()["cells"]}
            if lyr.label == "core":
                assert who is not None and set(got) <= who.cells.get(res, set()), (lid, res)
            elif who is not None:
                public = {c["h3"]: c for c in ok(ctx.get(None, q)).json()["cells"]}
                assert outside(got, who, res) == outside(public, who, res), (lid, res)


def check_alerts(ctx: Ctx, who: Caller) -> None:
    got = ok(ctx.get(who, "/api/alerts?status=all&limit=5000")).json()["alerts"]
    records_in_scope(ctx, who, "alert", {a["id"] for a in got})


def check_history(ctx: Ctx, who: Caller) -> None:
    got = ok(ctx.get(who, "/api/history?limit=5000")).json()
    records_in_scope(ctx, who, "alert", {a["id"] for a in got["alerts"]})
    records_in_scope(ctx, who, "task", {t["id"] for t in got["tasks"]})
    if who is not None:  # another district's area names nothing the caller may see
        other = ctx.other(who)
        far = ok(ctx.get(who, f"/api/history?area={other.code}"), 200, 400)
        if far.status_code == 200:
            assert not far.json()["alerts"] and not far.json()["tasks"]


def check_evaluate(ctx: Ctx, who: Caller) -> None:
    ok(ctx.send("POST", who, "/api/alerts/evaluate"))


def check_patch_alert(ctx: Ctx, who: Caller) -> None:
    if who is None:
        return  # the public (open operations in the demo) has no scope to leave
    theirs = ids_in(ctx.settings, "alert", ctx.other(who))
    ok(ctx.send("PATCH", who, f"/api/alerts/{min(theirs)}", json={"status": "acknowledged"}), 404)


def check_tasks(ctx: Ctx, who: Caller) -> None:
    got = ok(ctx.get(who, "/api/tasks?limit=1000")).json()["tasks"]
    records_in_scope(ctx, who, "task", {t["id"] for t in got})


def check_dispatch(ctx: Ctx, who: Caller) -> None:
    if who is None:
        return
    other = ctx.other(who)
    ok(ctx.send("POST", who, "/api/tasks", json={"title": "sneak", "area": other.patch}), 403)
    ok(ctx.send("POST", who, "/api/tasks", json={"title": "mine", "area": who.patch}), 201)


def _other_task(ctx: Ctx, who: District) -> int:
    other = ctx.other(who)
    theirs = ids_in(ctx.settings, "task", other)
    if theirs:
        return min(theirs)
    return int(sql(ctx.settings, "INSERT INTO twin.task (title, state, priority, area_id)"
                   " VALUES ('theirs', 'open', 2, %s) RETURNING id", (other.patch,))[0][0])  # fmt: skip


def check_task(ctx: Ctx, who: Caller) -> None:
    if who is not None:
        ok(ctx.get(who, f"/api/tasks/{_other_task(ctx, who)}"), 404)


def check_patch_task(ctx: Ctx, who: Caller) -> None:
    if who is not None:
        r = ctx.send("PATCH", who, f"/api/tasks/{_other_task(ctx, who)}", json={"priority": 1})
        ok(r, 404)


def check_cockpit(ctx: Ctx, who: Caller) -> None:
    for d in ctx.world.values():
        r = ctx.get(who, f"/api/cockpit?level=district&area={d.code}")
        ok(r, 200 if who is None or who is d else 403)
    ok(ctx.get(who, "/api/cockpit?level=city"), 200 if who is None else 403)


def check_review(ctx: Ctx, who: Caller) -> None:
    from datetime import UTC, datetime, timedelta

    end = datetime.now(UTC) + timedelta(hours=1)
    span = {"from": (end - timedelta(days=30)).isoformat(), "to": end.isoformat()}
    got = ok(ctx.get(who, "/api/review", params=span)).json()
    records_in_scope(ctx, who, "alert", {a["id"] for a in got["alerts"]["alerts"]})
    records_in_scope(ctx, who, "task", {t["id"] for t in got["tasks"]["tasks"]})
    if who is not None:
        ok(ctx.get(who, "/api/review", params={**span, "area": ctx.other(who).code}), 403)


def check_me(ctx: Ctx, who: Caller) -> None:
    assert ok(ctx.get(who, "/api/me")).json()["name"] == (who.user if who else "anonymous")


def _catalog_rows(doc: dict[str, Any]) -> dict[str, Any]:
    return {d["identifier"]: d.get("records") for d in doc["dataset"]}


def check_catalog(ctx: Ctx, who: Caller) -> None:
    """Records (events, hazard sites) count only the caller's rows, core risk layers only the
    cells in its scope; everything else is counted as for the public."""
    got = _catalog_rows(ok(ctx.get(who, "/catalog")).json())
    public = _catalog_rows(ok(ctx.get(None, "/catalog")).json())
    for name, table in (("events", "event"), ("hazard_sites", "hazard_site")):
        if name in got and who is not None:
            assert got[name] == len(ids_in(ctx.settings, table, who)), name
    for lid, rows in got.items():
        if lid in ("events", "hazard_sites"):
            continue
        if lid in public:
            assert rows == public[lid], lid
        else:  # a core risk layer: the public never gets it
            assert who is not None and lid.startswith("risk-"), lid
            layer = lid.removeprefix("risk-")
            n = sql(ctx.settings, "SELECT count(*) FROM twin.risk_score r JOIN twin.cell_stats s"
                    " USING (res, cell) WHERE r.layer_id = %s AND s.area_id = ANY(%s)"
                    " AND r.res = (SELECT max(res) FROM twin.risk_score WHERE layer_id = %s)",
                    (layer, list(who.areas), layer))[0][0]  # fmt: skip
            assert rows <= n, lid


def _stac_items(ctx: Ctx, who: Caller) -> dict[str, dict[str, Any]]:
    root = ok(ctx.get(who, "/stac")).json()
    items = {}
    for child in (x for x in root["links"] if x["rel"] == "child"):
        coll = ok(ctx.get(who, child["href"])).json()
        for link in (x for x in coll["links"] if x["rel"] == "item"):
            items[link["href"]] = ok(ctx.get(who, link["href"])).json()
    return items


def check_stac(ctx: Ctx, who: Caller) -> None:
    """The STAC tree (catalog, collections, items): the exports of records lie within the
    caller's records; every other item is the public's."""
    got = _stac_items(ctx, who)
    public = _stac_items(ctx, None)
    for href, it in got.items():
        table = {"events": "event", "hazard_sites": "hazard_site"}.get(it["id"])
        if table is None:
            assert it == public[href], href
        elif who is not None:
            ((w, s, e, n),) = sql(ctx.settings, "SELECT ST_XMin(x), ST_YMin(x), ST_XMax(x), ST_YMax(x)"
                                  f" FROM (SELECT ST_Extent(geom) x FROM twin.{table} WHERE id = ANY(%s)) q",
                                  (list(ids_in(ctx.settings, table, who)),))  # fmt: skip
            assert it["bbox"] == pytest.approx([w, s, e, n]), it["id"]


def check_run_files(ctx: Ctx, who: Caller) -> None:
    for run in ctx.runs("flood"):
        for name in ("max_depth.tif", "time_of_max.tif"):
            r = ok(ctx.get(who, f"/files/runs/{run}/{name}"), 200, 404)
            assert r.content == ctx.get(None, f"/files/runs/{run}/{name}").content


def check_raster_files(ctx: Ctx, who: Caller) -> None:
    for (rid,) in sql(ctx.settings, "SELECT id FROM twin.raster_asset"):
        r = ok(ctx.get(who, f"/files/rasters/{rid}"), 200, 404)
        assert r.content == ctx.get(None, f"/files/rasters/{rid}").content


#: (method, OpenAPI path) -> its check. Every operation of the schema must be here.
def check_sta_write(path: str) -> Callable[[Ctx, Caller], None]:
    """SensorThings writes: sensors and their readings are a city-wide network (not under row
    security, like road links); a malformed write changes nothing anywhere (the snapshot)."""

    def check(ctx: Ctx, who: Caller) -> None:
        ok(ctx.send("POST", who, path, json={"result": "not a number"}), 400, 403, 404)

    return check


ROUTES: dict[tuple[str, str], Callable[[Ctx, Caller], None]] = {
    ("GET", "/healthz"): check_static("/healthz", 200, 503),
    ("GET", "/api/cells/{h3}"): check_cell_card,
    ("GET", "/api/cells"): check_cells,
    ("GET", "/api/addresses"): check_static("/api/addresses?q=1"),
    ("GET", "/tiles/style.json"): check_static("/tiles/style.json"),
    ("GET", "/tiles/{layer}.json"): check_tile_json,
    ("GET", "/tiles/{layer}/{z}/{x}/{y}.mvt"): check_tiles,
    ("GET", "/"): check_static("/"),
    ("GET", "/conformance"): check_static("/conformance"),
    ("GET", "/collections"): check_static("/collections"),
    ("GET", "/collections/{collection_id}"): check_static("/collections/buildings"),
    ("GET", "/collections/{collectionId}/items"): check_collection_items,
    ("GET", "/collections/{collection_id}/queryables"): check_queryables,
    ("GET", "/collections/{collection_id}/items/{feature_id}"): check_collection_item,
    ("POST", "/api/simulations/flood"): check_start_flood,
    ("POST", "/api/simulations/traffic"): check_start_traffic,
    ("GET", "/api/simulations"): check_runs,
    ("GET", "/api/simulations/{run_id}"): check_run,
    ("GET", "/api/simulations/{run_id}/cells"): check_run_cells,
    ("GET", "/api/simulations/{run_id}/links"): check_run_links,
    ("GET", "/api/simulations/{run_id}/roads"): check_run_roads,
    # OGC API Processes over the same runs
    ("GET", "/processes"): check_static("/processes"),
    ("GET", "/processes/{processId}"): check_static("/processes/flood"),
    ("POST", "/processes/{processId}/execution"): check_execute,
    ("GET", "/jobs"): check_jobs,
    ("GET", "/jobs/{jobId}"): check_job,
    ("GET", "/jobs/{jobId}/results"): check_job,
    ("DELETE", "/jobs/{jobId}"): check_dismiss,
    ("GET", "/api/nowcast"): check_nowcast("/api/nowcast"),
    ("GET", "/api/nowcast/cells"): check_nowcast("/api/nowcast/cells?horizon=60"),
    ("GET", "/api/layers"): check_layers,
    ("GET", "/api/risk"): check_risk,
    ("GET", "/api/alerts"): check_alerts,
    ("GET", "/api/history"): check_history,
    ("GET", "/api/alerts/rules"): check_static("/api/alerts/rules"),
    ("POST", "/api/alerts/evaluate"): check_evaluate,
    ("PATCH", "/api/alerts/{alert_id}"): check_patch_alert,
    ("GET", "/api/tasks"): check_tasks,
    ("POST", "/api/tasks"): check_dispatch,
    ("GET", "/api/tasks/{task_id}"): check_task,
    ("PATCH", "/api/tasks/{task_id}"): check_patch_task,
    ("GET", "/api/cockpit"): check_cockpit,
    ("GET", "/api/review"): check_review,
    ("GET", "/api/me"): check_me,
    ("GET", "/map"): check_static("/map", 200, 503),  # 503: web/node_modules not installed
    # SensorThings carries no people count and no scoped record (see check_sta_write)
    ("GET", "/sta/v1.1"): check_static("/sta/v1.1"),
    ("GET", "/sta/v1.1/{path}"): check_static("/sta/v1.1/Datastreams"),
    ("POST", "/sta/v1.1/CreateObservations"): check_sta_write("/sta/v1.1/CreateObservations"),
    ("POST", "/sta/v1.1/{path}"): check_sta_write("/sta/v1.1/Observations"),
    # The open-data catalogue and the files it points at
    ("GET", "/catalog"): check_catalog,
    ("GET", "/stac"): check_stac,
    ("GET", "/stac/collections/{collection_id}"): check_stac,
    ("GET", "/stac/collections/{collection_id}/items/{item_id}"): check_stac,
    ("GET", "/files/runs/{run_id}/{name}"): check_run_files,
    ("GET", "/files/rasters/{raster_id}"): check_raster_files,
    # archives hold public tiles only (twin.tiles.export); none is published in this world
    ("GET", "/files/published/{name}"): check_static("/files/published/none.pmtiles", 404),
}

#: Rows that a call must not change outside the caller's scope.
SNAPSHOT_SQL = {
    "alert": "SELECT id, row_to_json(t)::text FROM twin.alert t",
    "task": "SELECT id, row_to_json(t)::text FROM twin.task t",
    "task_transition": "SELECT x.id, row_to_json(x)::text FROM twin.task_transition x"
    " JOIN twin.task t ON t.id = x.task_id",
    "event": "SELECT id, row_to_json(t)::text FROM twin.event t",
}


def snapshot(ctx: Ctx, who: District) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of the scoped tables outside ``who``'s scope."""
    out = {}
    for table, query in SNAPSHOT_SQL.items():
        where = " WHERE t.area_id IS NULL OR t.area_id <> ALL(%s)"
        out[table] = set(sql(ctx.settings, query + where, (list(who.areas),)))
    return out


def operations(settings: Settings) -> set[tuple[str, str]]:
    schema = create_app(settings).openapi()
    return {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}


def test_every_route_has_a_scope_check(tiny_settings: Settings) -> None:
    assert operations(tiny_settings) == set(ROUTES)


def test_every_tile_layer_has_a_scope_check(ctx: Ctx) -> None:
    assert set(TILE_CHECKS) == set(LAYERS)
    assert set(RUN_CHECKS) == set(RUN_KIND)
    layers = all_tile_layers(ctx)
    assert any(lyr.label == "core" for lyr in layers.values())
    for lyr in layers.values():
        tile_check(lyr)  # a KeyError names a layer (or data class) without a rule


# Each route's check, run as each district's user and as the public; a scoped caller's view
# of the twin (what it may see, by direct SQL) is the same before and after.
@pytest.mark.parametrize("op", sorted(ROUTES), ids=lambda op: f"{op[0]} {op[1]}")
def test_route_stays_in_scope(ctx: Ctx, op: tuple[str, str]) -> None:
    for who in (ctx.world["A"], ctx.world["B"], None):
        before = snapshot(ctx, who) if who is not None else None
        ROUTES[op](ctx, who)
        if who is not None:
            assert snapshot(ctx, who) == before, (op, who.code)


#: API routes kept out of the OpenAPI schema, each with why it needs no scope check here.
HIDDEN_ROUTES = {
    # an endless stream of new sensor readings: no people count and no scoped record
    # (sensors are a city-wide network, see check_sta_write); it needs "important" clearance
    ("GET", "/api/live"),
    # alerts and task transitions as they change: read as the caller under row-level security
    # (tests/api/test_stream.py checks that a district user gets nothing from another district)
    ("GET", "/api/stream"),
    # the web map's own files (scripts, styles, the vendored MapLibre): no data at all
    ("GET", "/static/{name}"),
    ("GET", "/static/vendor/{name}"),
    ("GET", "/favicon.ico"),
}


def test_routes_outside_the_schema_are_known() -> None:
    import importlib
    import pkgutil

    from fastapi.routing import APIRoute

    import twin.api.routers as pkg

    hidden = set()
    for mod in pkgutil.iter_modules(pkg.__path__):
        router = getattr(importlib.import_module(f"{pkg.__name__}.{mod.name}"), "router", None)
        for r in getattr(router, "routes", []):
            if isinstance(r, APIRoute) and not r.include_in_schema:
                hidden |= {(m, r.path) for m in r.methods}
    assert hidden == HIDDEN_ROUTES
