"""The web map in a real browser: Debian's Chromium driven by Playwright, against a live server on
the tiny demo twin. Screenshots are kept in ``tests/artifacts/web/``.

Expected values come from the API and the database, not from the page's own code: the card's
numbers are compared with ``/api/cells/{h3}``, task moves are read back through ``/api/tasks``,
the clicked cell is computed with the h3 library from the map centre.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import h3
import httpx
import numpy as np
import psycopg
import pytest
import uvicorn
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from tests.services import free_port
from twin.api.app import create_app
from twin.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "web"
BACKGROUND = (0xF4, 0xF1, 0xEA)  # the style's background colour


@pytest.fixture(scope="module")
def server(tiny_settings: Settings) -> Iterator[str]:
    """The real app under uvicorn on a free port, in a thread (opened as a public demo)."""
    yield from _serve(tiny_settings)


@pytest.fixture(scope="module")
def secure_server(tiny_settings: Settings) -> Iterator[str]:
    """The same twin with the secure defaults: the public gets aggregates only."""
    yield from _serve(tiny_settings.model_copy(update={
        "open_simulations": False, "open_operations": False, "public_clearance": "general"}))  # fmt: skip


def _serve(settings: Settings) -> Iterator[str]:
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    yield base
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), (
        "Chromium is missing: run `make test` (its set-up installs the OS package chromium)"
    )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


class Watched:
    """A page in a fresh context with everything that went wrong recorded."""

    def __init__(self, browser: Browser, tmp: Path) -> None:
        # A fresh user-data dir per test: a new context is an empty, isolated profile.
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", self._failed)
        self.page.on(
            "response", lambda r: r.status >= 400 and self.failed.append(f"{r.status} {r.url}")
        )

    def _failed(self, r: Any) -> None:
        # The live feed is an endless stream: leaving or reloading the page, or a new sign-in
        # replacing it, aborts it by design.
        path = r.url.split("?")[0]
        aborted = "ERR_ABORTED" in (r.failure or "")
        if aborted and path.endswith(("/api/live", "/api/stream")):
            return
        # A tile-data bump on the push channel reloads the vector sources: MapLibre aborts
        # the TileJSON and tile requests still in flight for them, by design.
        if aborted and "/tiles/" in path:
            return
        self.failed.append(f"{r.url} {r.failure}")

    def open(self, url: str) -> Page:
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
        self.settle()
        return self.page

    def settle(self) -> None:
        # Predicates as functions: a bare expression is eval'ed in the page, which the map's
        # Content-Security-Policy (no 'unsafe-eval') refuses.
        self.page.wait_for_function(
            "() => window.twinMap.map.loaded() && window.twinMap.map.areTilesLoaded()",
            timeout=30_000,
        )
        self.page.wait_for_timeout(300)  # a frame or two after the last tile

    def assert_clean(self) -> None:
        assert not self.errors, f"console errors: {self.errors}"
        assert not self.failed, f"failed requests: {self.failed}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser: Browser, tmp_path: Path) -> Iterator[Watched]:
    w = Watched(browser, tmp_path)
    yield w
    w.close()


def _shot(page: Page, name: str) -> Image.Image:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png")
    return Image.open(io.BytesIO(page.locator("#map canvas").screenshot())).convert("RGB")


def _drawn_share(img: Image.Image) -> tuple[float, int]:
    """Share of pixels that differ from the background, and how many colours there are."""
    px = np.asarray(img, dtype=np.int32).reshape(-1, 3)
    far = np.abs(px - np.array(BACKGROUND)).sum(axis=1) > 30
    return float(far.mean()), len(np.unique(px, axis=0))


@pytest.mark.parametrize("mode", ["planner", "emergency", "grid"])
def test_each_mode_draws_the_city_without_errors(server: str, watched: Watched, mode: str) -> None:
    page = watched.open(f"{server}/map?mode={mode}")
    assert page.get_attribute("body", "data-mode") == mode
    assert page.locator(f"[data-panel={mode}]").is_visible()
    share, colours = _drawn_share(_shot(page, f"mode-{mode}"))
    assert share > 0.3 and colours > 50, (share, colours)
    layers = page.evaluate(
        "window.twinMap.map.getStyle().layers.filter(l => (l.layout||{}).visibility !== 'none').map(l => l.id)"
    )
    expected = {
        "planner": {"buildings-3d", "columns"},
        "emergency": {"risk-fill", "flood-fill", "traffic-line", "alerts-circle"},
        "grid": {"cells-fill", "buildings-flat"},
    }[mode]
    assert expected <= set(layers)
    watched.assert_clean()


def test_the_map_works_under_its_content_security_policy(server: str, watched: Watched) -> None:
    """The page is served with a CSP (twin/api/security_headers.py); every mode draws with no
    violation reported (a blocked worker, image or style would be one), nothing inline runs."""
    r = httpx.get(f"{server}/map")
    csp = r.headers["content-security-policy"]
    assert "worker-src 'self' blob:" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-eval'" not in csp and r.headers["x-frame-options"] == "DENY"
    watched.page.add_init_script(
        "window.cspViolations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    for mode in ("planner", "emergency", "grid"):
        page = watched.open(f"{server}/map?mode={mode}")
        share, _ = _drawn_share(_shot(page, f"csp-{mode}"))
        assert share > 0.3, (mode, share)
        assert page.evaluate("window.cspViolations") == [], mode
        # Leaving a page aborts its loads in flight (tiles, MapLibre's blob: images).
        watched.failed = [f for f in watched.failed if "ERR_ABORTED" not in f]
    watched.assert_clean()
    # The policy is enforced: an inline script is refused, and the refusal reported.
    watched.page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.inl = 1';"
        " document.body.appendChild(s); }"
    )
    watched.page.wait_for_function("() => window.cspViolations.length > 0", timeout=5_000)
    assert watched.page.evaluate("window.inl") is None
    assert "script-src" in watched.page.evaluate("window.cspViolations")[0]


def _task_cell(url: str) -> tuple[int, str]:
    with psycopg.connect(url) as c:
        row = c.execute(
            "SELECT t.id, twin.h3_to_hex(t.cell) FROM twin.task t WHERE t.state = 'open' AND t.cell IS NOT NULL"
            " AND twin.h3_resolution(t.cell) = 9 ORDER BY t.id LIMIT 1"
        ).fetchone()
    assert row, "the demo dispatches open tasks to res-9 cells"
    return row[0], row[1]


def test_clicking_a_cell_opens_its_card_and_moves_a_task(
    server: str, watched: Watched, tiny_demo: dict[str, str]
) -> None:
    task_id, cell = _task_cell(tiny_demo["url"])
    lat, lon = h3.cell_to_latlng(cell)
    page = watched.open(f"{server}/map?mode=grid&center={lon},{lat}&zoom=14")  # res 9 at z14
    box = page.locator("#map").bounding_box()
    assert box
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#card[data-loaded=yes]", timeout=15_000)
    assert page.get_attribute("#card", "data-h3") == cell
    api: dict[str, Any] = httpx.get(f"{server}/api/cells/{cell}").json()
    shown = page.eval_on_selector_all(
        "#card [data-field]",
        "els => els.map(e => [e.dataset.field, e.dataset.value, e.textContent])",
    )
    assert len(shown) >= 8
    for field, value, text in shown:
        assert _json(value) == api["cell"][field], field
        if api["cell"][field] is None:
            assert text == "< k"  # a suppressed count says so, it does not show 0
    assert page.locator(f"#card .task[data-task='{task_id}']").count() == 1
    _shot(page, "card")

    page.click(f"#card button[data-task='{task_id}'][data-state=accepted]")
    page.wait_for_function(
        f"() => document.querySelector(\"#card .task[data-task='{task_id}']\")?.dataset.taskState === 'accepted'",
        timeout=15_000,
    )
    task = httpx.get(f"{server}/api/tasks/{task_id}").json()
    assert task["state"] == "accepted"
    assert [h["to"] for h in task["transitions"]][-1] == "accepted"
    # An illegal move is refused by the server and said in the card, and changes nothing.
    page.evaluate(
        f"fetch('/api/tasks/{task_id}', {{method: 'PATCH', headers: {{'Content-Type': 'application/json'}}, body: '{{\"state\": \"closed\"}}'}})"
    )
    assert httpx.get(f"{server}/api/tasks/{task_id}").json()["state"] == "accepted"
    _shot(page, "card-after-accept")
    watched.errors = [e for e in watched.errors if "409" not in e]  # the deliberate refusal above
    watched.failed = [f for f in watched.failed if not f.startswith("409 ")]
    watched.assert_clean()


def _json(text: str) -> Any:
    import json

    return json.loads(text)


def test_one_click_runs_a_storm_and_shows_it(
    server: str, watched: Watched, tiny_demo: dict[str, str]
) -> None:
    with psycopg.connect(tiny_demo["url"]) as c:
        before = c.execute("SELECT coalesce(max(id), 0) FROM twin.sim_run").fetchone()[0]  # type: ignore[index]
    page = watched.open(f"{server}/map?mode=emergency")
    page.fill("#storm-duration", "10")
    page.fill("#storm-after", "0")
    page.click("#run-storm")
    page.wait_for_selector("#storm-progress:not([hidden])")
    page.wait_for_selector("#storm-state[data-status]", timeout=180_000)
    assert page.get_attribute("#storm-state", "data-status") == "succeeded", page.inner_text(
        "#storm-state"
    )
    run_id = int(page.get_attribute("#storm-state", "data-run") or 0)
    assert run_id > before
    run = httpx.get(f"{server}/api/simulations/{run_id}").json()
    assert run["status"] == "succeeded" and run["params"]["duration_s"] == 600
    assert page.input_value("#flood-run") == str(run_id)
    watched.settle()
    sources = page.evaluate("Object.keys(window.twinMap.map.getStyle().sources)")
    assert "flood" in sources
    assert page.evaluate("window.twinMap.map.getSource('flood').url").endswith(
        f"/tiles/flood_{run_id}.json"
    )
    _shot(page, "storm-done")
    watched.assert_clean()


def test_address_search_opens_the_card_of_its_cell(server: str, watched: Watched) -> None:
    found = httpx.get(f"{server}/api/addresses", params={"q": "1号", "limit": 10}).json()[
        "addresses"
    ]
    assert found, "the demo city has numbered addresses"
    page = watched.open(f"{server}/map?mode=grid")
    page.fill("#search", "1号")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#search-results li")
    assert page.locator("#search-results li").first.inner_text() == found[0]["text"]
    page.locator("#search-results li").first.click()
    page.wait_for_selector("#card[data-loaded=yes]", timeout=15_000)
    assert page.get_attribute("#card", "data-h3") == found[0]["h3"]
    watched.settle()
    _shot(page, "search")
    watched.assert_clean()


def test_signing_in_scopes_the_map_to_the_user(
    server: str, watched: Watched, tiny_demo: dict[str, str]
) -> None:
    from twin.access.tokens import add_user

    with psycopg.connect(tiny_demo["url"]) as c:
        district, code = c.execute(
            "SELECT id, code FROM twin.admin_area WHERE level = 'district' ORDER BY code LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        _, token = add_user(c, "map-operator", "operator", f"district:{code}")
        c.commit()
        mine = c.execute(
            "SELECT count(*) FROM twin.task WHERE area_id IN (SELECT twin.area_subtree(%s))",
            (district,),
        ).fetchone()[0]  # type: ignore[index]
        everyone = c.execute("SELECT count(*) FROM twin.task").fetchone()[0]  # type: ignore[index]
    page = watched.open(f"{server}/map?mode=grid")
    assert page.evaluate("api('/api/tasks?limit=1000').then(r => r.total)") == everyone
    page.fill("#token", token)
    page.click("#sign-in")
    page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
    watched.settle()
    assert page.inner_text("#who").startswith("map-operator · operator")
    assert page.evaluate("api('/api/tasks?limit=1000').then(r => r.total)") == mine < everyone
    watched.assert_clean()


def test_the_public_map_shows_aggregates_and_a_demo_link_signs_in(
    secure_server: str, watched: Watched, tiny_demo: dict[str, str]
) -> None:
    """Secure defaults: the public map draws without a single refused request (it asks only
    for what the public may read), then a `twin demo`-style link with the token in the
    fragment signs the tab in."""
    from twin.access.tokens import add_user

    page = watched.open(f"{secure_server}/map?mode=emergency")
    assert page.inner_text("#who") == "public"
    assert page.is_disabled("#run-storm")
    assert "Sign in" in page.inner_text("#alerts")
    watched.assert_clean()
    with psycopg.connect(tiny_demo["url"]) as c:
        _, token = add_user(c, "map-demo-link", "operator")
        c.commit()
    # Same page, new fragment: the map takes the token and reloads itself.
    with page.expect_navigation():
        page.goto(f"{secure_server}/map?mode=emergency#token={token}")
    page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
    watched.settle()
    assert token not in page.url  # taken out of the address bar (and history)
    assert page.inner_text("#who").startswith("map-demo-link · operator")
    assert not page.is_disabled("#run-storm")
    assert "Sign in" not in page.inner_text("#alerts")
    assert page.evaluate("api('/api/alerts?limit=1').then(r => r.count)") >= 0
    # The reload cancels what the old page still had in flight (its favicon): not a failure.
    watched.failed = [f for f in watched.failed if not f.endswith("net::ERR_ABORTED")]
    watched.assert_clean()


def test_a_new_alert_and_a_dispatched_task_appear_without_a_reload(
    server: str, watched: Watched, tiny_demo: dict[str, str]
) -> None:
    """The push channel (/api/stream): an alert committed by the rules (here: by SQL, as the
    evaluation writes it) shows in the alert list, and a task dispatched to the open card's
    patch shows in the card, within seconds and on the same page."""
    _, cell = _task_cell(tiny_demo["url"])
    lat, lon = h3.cell_to_latlng(cell)
    page = watched.open(f"{server}/map?mode=grid&center={lon},{lat}&zoom=14")
    page.evaluate("() => { window.sameDocument = true; }")
    box = page.locator("#map").bounding_box()
    assert box
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#card[data-loaded=yes]", timeout=15_000)
    page.wait_for_timeout(1500)  # the stream is open
    message = f"pushed alert {time.monotonic_ns()}"
    with psycopg.connect(tiny_demo["url"]) as c:
        patch = c.execute(
            "SELECT area_id FROM twin.cell_stats WHERE cell = twin.h3_from_hex(%s)", (cell,)
        ).fetchone()
        assert patch and patch[0] is not None
        c.execute(
            "INSERT INTO twin.alert (rule_id, dedup_key, level, area_id, message)"
            " VALUES ('web-push', %s, 'red', %s, %s)",
            (message, patch[0], message),
        )
        task = c.execute(
            "INSERT INTO twin.task (title, area_id, cell) VALUES ('pushed task', %s,"
            " twin.h3_from_hex(%s)) RETURNING id",
            (patch[0], cell),
        ).fetchone()
        assert task
        c.execute(
            "INSERT INTO twin.task_transition (task_id, to_state, actor) VALUES (%s, 'open', 'test')",
            (task[0],),
        )
        c.commit()
    page.wait_for_function(
        "(m) => [...document.querySelectorAll('#alerts li')].some((li) => li.textContent.includes(m))",
        arg=message,
        timeout=10_000,
    )
    page.wait_for_selector(f"#card .task[data-task='{task[0]}']", timeout=10_000)
    assert page.evaluate("() => window.sameDocument === true")  # no reload happened
    _shot(page, "pushed-alert-and-task")
    watched.assert_clean()


def test_the_time_slider_shows_an_alert_of_the_past_and_returns_to_live(
    server: str, watched: Watched, tiny_demo: dict[str, str]
) -> None:
    """An alert raised two hours ago and resolved an hour ago is not in the live list; moved
    to 90 minutes ago, the slider shows it (as /api/history has it); back to live, it goes."""
    now = datetime.now(UTC)
    message = f"past alert {time.monotonic_ns()}"
    with psycopg.connect(tiny_demo["url"]) as c:
        c.execute(
            "INSERT INTO twin.alert (rule_id, dedup_key, level, status, area_id, message,"
            " first_seen, last_seen, resolved_at) SELECT 'web-past', %s, 'red', 'resolved',"
            " min(id), %s, %s, %s, %s FROM twin.admin_area WHERE level = 'grid'",
            (message, message, now - timedelta(hours=2), now - timedelta(hours=2),
             now - timedelta(hours=1)),
        )  # fmt: skip
        c.commit()
    page = watched.open(f"{server}/map?mode=emergency")
    listed = "(m) => [...document.querySelectorAll('#alerts li')].some((li) => li.textContent.includes(m))"
    assert not page.evaluate(listed, message)
    target = int((now - timedelta(minutes=90)).timestamp() * 1000)
    page.evaluate(
        "(v) => { const s = document.querySelector('#time-slider'); s.value = String(v);"
        " s.dispatchEvent(new Event('input')); }",
        target,
    )
    page.wait_for_function(listed, arg=message, timeout=10_000)
    shown = page.get_attribute("#time-label", "data-at")
    assert (
        shown
        and abs(datetime.fromisoformat(shown.replace("Z", "+00:00")).timestamp() * 1000 - target)
        < 60_000
    )  # the slider steps by the minute
    _shot(page, "time-slider")
    page.click("#time-live")
    page.wait_for_function(f"() => !({listed})({message!r})", timeout=10_000)
    assert page.get_attribute("#time-label", "data-at") == ""
    watched.assert_clean()


@pytest.fixture(scope="module")
def live_server(
    tiny_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """The app with the live loop, as `make demo` serves it: a private Mosquitto, the bridge
    and the rule watch in the API process."""
    from twin.sense.broker import private_broker

    with private_broker(tmp_path_factory.mktemp("broker")) as broker:
        for base in _serve(tiny_settings.model_copy(update={"mqtt_url": broker})):
            yield base, broker


def test_a_reading_over_mqtt_raises_an_alert_and_a_task_on_the_page(
    live_server: tuple[str, str], watched: Watched, tiny_demo: dict[str, str]
) -> None:
    """The whole loop: a water level published over MQTT crosses water_level_high (rules/),
    the bridge stores it, the rule watch raises the alert and dispatches its task, and the
    open page shows the alert without a reload."""
    import asyncio
    import json

    import aiomqtt

    base, broker = live_server
    with psycopg.connect(tiny_demo["url"]) as c:
        row = c.execute(
            "SELECT s.id, s.code FROM twin.sensor s WHERE s.kind = 'water_level' AND NOT EXISTS"
            " (SELECT 1 FROM twin.alert a WHERE a.rule_id = 'water_level_high'"
            " AND a.subject = s.code) AND EXISTS (SELECT 1 FROM twin.admin_area g"
            " WHERE g.level = 'grid' AND ST_Intersects(g.geom, s.geom)) ORDER BY s.id LIMIT 1"
        ).fetchone()
    # (a sensor in a grid patch: an alert outside every patch has no area to dispatch to)
    assert row, "a water-level sensor in a patch without an alert of the rule"
    sensor, code = int(row[0]), str(row[1])
    page = watched.open(f"{base}/map?mode=emergency")
    page.evaluate("() => { window.sameDocument = true; }")
    page.wait_for_timeout(1500)  # the stream is open
    port = int(broker.rsplit(":", 1)[1])

    async def publish() -> None:
        async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as m:
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            await m.publish(f"v1.1/Datastreams({sensor})/Observations",
                            json.dumps({"phenomenonTime": stamp, "result": 0.8}), qos=1)  # fmt: skip

    # Playwright's sync API holds this thread's event loop: publish from another thread.
    sender = threading.Thread(target=lambda: asyncio.run(publish()))
    sender.start()
    sender.join(15)
    page.wait_for_function(
        "(m) => [...document.querySelectorAll('#alerts li')].some((li) => li.textContent.includes(m))",
        arg=f"{code} at 0.8",
        timeout=15_000,
    )
    assert page.evaluate("() => window.sameDocument === true")
    # The task is dispatched in its own transaction just after the alert's: wait for it.
    deadline = time.monotonic() + 15
    while True:
        with psycopg.connect(tiny_demo["url"]) as c:
            task = c.execute(
                "SELECT t.state FROM twin.task t JOIN twin.alert a ON a.id = t.alert_id"
                " WHERE a.rule_id = 'water_level_high' AND a.subject = %s", (code,),
            ).fetchall()  # fmt: skip
        if task or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert task == [("open",)]
    _shot(page, "mqtt-alert")
    watched.assert_clean()
