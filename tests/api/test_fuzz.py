"""Fuzzing the HTTP API from its own OpenAPI schema with schemathesis: no route answers 5xx.

Every operation of ``/openapi.json`` gets a bounded, derandomised run (the budget is
``TWIN_FUZZ_EXAMPLES`` examples per operation, 15 by default; ``scripts/fuzz.sh`` raises it)
against a throwaway tiny twin of this module's own, built by ``twin demo`` (city, a storm, the
traffic runs, risk, alerts and tasks), so the writes the fuzzer makes (tasks, alerts) touch no
other test's data. The two routes that start simulations are never generated (each call would
queue a background run); malformed bodies for them are posted by hand below.

Hypothesis seldom draws the values that broke routes here (NUL, '²', 5000 digits, NaN and lone
surrogates in JSON), so a second test sends a fixed list of such values through every parameter
and body field of every operation; below it, one regression test per bug found, as plain requests.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS as REGISTRY
from schemathesis.checks import load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from typer.testing import CliRunner

from twin.api.app import create_app
from twin.cli import app as cli_app
from twin.settings import Settings

EXAMPLES = int(os.environ.get("TWIN_FUZZ_EXAMPLES", "15"))
#: What every answer must pass: every check schemathesis has (``st run --checks all``).
load_all_checks()
CHECKS = REGISTRY.get_all()
#: One setting: a value the schema allows and the twin refuses on its meaning (an H3 cell
#: that does not exist, a bbox with min > max, a level name that is none) is a 400 naming the
#: parameter; positive_data_acceptance takes 400 as such an answer. Every other 4xx to a
#: schema-valid request still fails it.
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"positive_data_acceptance": {
        "expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "429"]}}}
)  # fmt: skip
#: Routes that queue background runs: left out of the generated calls.
STARTS_RUNS = r"^(/api/simulations/(flood|traffic)|/processes/\{processId\}/execution)$"

# The schema depends on neither settings nor data: read it from an app that never starts.
OPENAPI = create_app(Settings(_env_file=None)).openapi()
schema = schemathesis.openapi.from_dict(copy.deepcopy(OPENAPI), config=CONFIG).exclude(
    method="POST", path_regex=STARTS_RUNS
)


@pytest.fixture(scope="module")
def twin_settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """A whole tiny demo twin of our own (about 10 s)."""
    url = make_database("twin_fuzz")
    data = tmp_path_factory.mktemp("fuzz")
    r = CliRunner().invoke(
        cli_app,
        ["demo", "--size", "tiny", "--seed", "5", "--no-serve", "--storm-duration", "10min",
         "--json"],
        env={"TWIN_DATABASE_URL": url, "TWIN_DATA_DIR": str(data)},
    )  # fmt: skip
    assert r.exit_code == 0, r.output[-3000:]
    # Anonymous callers may write (the demo's openings), so the writes are fuzzed past the role
    # check whatever the defaults become.
    return Settings(_env_file=None, database_url=url, data_dir=Path(data),
                    open_operations=True, open_simulations=True)  # fmt: skip


@pytest.fixture(scope="module")
def session(twin_settings: Settings) -> Iterator[asgi.ASGIClient]:
    """Schemathesis' in-process client; its app's lifespan (the pool) lasts the module."""
    with asgi.get_client(create_app(twin_settings)) as client:
        yield client
    asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def client(twin_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(twin_settings)) as c:
        yield c


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # pytest 9.2 builds a node id from the original name and the call spec only, so the
    # operation label schemathesis 4.32 puts into each test's name is lost from the id (every
    # operation's test has the same id). A parametrisation of our own makes schemathesis keep
    # the label in the id: test_no_server_error[GET /api/cells][15-examples].
    if "budget" in metafunc.fixturenames:
        metafunc.parametrize("budget", [EXAMPLES], ids=[f"{EXAMPLES}-examples"])


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same cases on every run: CI failures reproduce
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_error(case: schemathesis.Case, session: asgi.ASGIClient, budget: int) -> None:
    """Positive and negative cases of each operation: no 5xx, and each answer has a documented
    media type and matches its documented schema. A failure prints a curl to replay it."""
    case.call_and_validate(base_url=f"http://{asgi.HOST}", session=session, checks=CHECKS)


def test_every_operation_is_fuzzed() -> None:
    labels = {op.ok().label for op in schema.get_all_operations()}
    assert "GET /api/cells/{h3}" in labels and "PATCH /api/tasks/{task_id}" in labels
    assert not {"POST /api/simulations/flood", "POST /api/simulations/traffic",
                "POST /processes/{processId}/execution"} & labels  # fmt: skip


# ------------------------------------------------- hostile values, every parameter
# Values hypothesis seldom or never draws. Those that reached a 500 before the fixes: NUL (a
# driver error, 400 naming nothing), digits int() refuses ('²', Arabic-Indic, more than 4300 of
# them), hex outside 64 bits, and in JSON bodies NaN, Infinity and lone surrogates.
HOSTILE_TEXT = ["\x00", "a\x00b", "²", "١٢", "9" * 5000, "-1", str(2**63), str(-(2**63) - 1),
                "1e999", "nan", "-inf", "", " ", "%00", "'\"\\;--", "😀", "\ufdfa" * 60, "0x1f",
                "1_0", "\u202e"]  # fmt: skip
HOSTILE_JSON = ['"\\u0000"', '"a\\u0000"', '"\\ud800"', '"²"', '"' + "9" * 5000 + '"', '"-1"',
                str(2**63), str(2**70), "-1", "0", "NaN", "Infinity", "-Infinity", "1e400",
                "9" * 5000, "null", "true", "[]", "{}", '""', '" "']  # fmt: skip
OPERATIONS = [
    (method.upper(), path, op)
    for path, ops in OPENAPI["paths"].items()
    for method, op in ops.items()
    if not (
        method == "post"
        and (path.startswith("/api/simulations/") or path.startswith("/processes/"))
    )
]
#: A body each write accepts, so that one hostile field is what the request gets wrong.
BASE_BODIES = {
    "POST /api/tasks": {"title": "t", "area": "C"},
    "PATCH /api/tasks/{task_id}": {"priority": 3},
    "PATCH /api/alerts/{alert_id}": {"status": "resolved"},
}


@pytest.fixture(scope="module")
def known(twin_settings: Settings) -> dict[str, str]:
    """Values of the twin for required and path parameters, to reach past the first lookup."""
    with psycopg.connect(twin_settings.database_url or "") as conn:
        cell = conn.execute(
            "SELECT twin.h3_to_hex(cell) FROM twin.cell_stats WHERE res = 9 ORDER BY cell LIMIT 1"
        ).fetchall()[0][0]
        runs = dict(conn.execute("SELECT kind, max(id) FROM twin.sim_run GROUP BY kind").fetchall())
    return {"h3": cell, "flood": str(runs["flood"]), "traffic": str(runs["traffic"])}


def _defaults(path: str, known: dict[str, str]) -> dict[str, str]:
    run = known["traffic"] if path.endswith("/links") else known["flood"]
    layer = "buildings" if path.startswith("/tiles/") else "onemap"
    collection = "exports" if path.startswith("/stac/") else "buildings"
    name = "max_depth.tif" if path.startswith("/files/runs/") else "city.pmtiles"
    return {"h3": known["h3"], "run_id": run, "layer": layer, "z": "14", "x": "13000",
            "y": "6000", "collection_id": collection, "collectionId": "buildings", "feature_id": "1", "alert_id": "1",
            "task_id": "1", "bbox": "-180,-90,180,90", "q": "1", "level": "city",
            "path": "Things", "item_id": "buildings", "name": name, "raster_id": "1",
            "processId": "flood", "jobId": run}  # fmt: skip


def _url(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: quote(values[m.group(1)], safe=""), path)


@pytest.mark.parametrize(
    ("method", "path", "op"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS]
)
def test_hostile_values_in_every_parameter_are_not_5xx(
    client: TestClient, known: dict[str, str], method: str, path: str, op: dict[str, Any]
) -> None:
    """Each hostile value in each path and query parameter (the others at usable values), then
    in each field of the body: no answer is 5xx."""
    defaults = _defaults(path, known)
    params = op.get("parameters", [])
    required = {p["name"]: defaults[p["name"]] for p in params if p.get("required") or
                (path == "/api/cockpit" and p["name"] == "level")}  # fmt: skip
    base = BASE_BODIES.get(f"{method} {path}")
    body = json.dumps(base) if base is not None else None
    headers = {"content-type": "application/json"} if body is not None else {}
    failures = []

    def send(values: dict[str, str], content: str | None) -> None:
        query = {p["name"]: values[p["name"]] for p in params
                 if p["in"] == "query" and p["name"] in values}  # fmt: skip
        r = client.request(method, _url(path, values), params=query, content=content,
                           headers=headers)  # fmt: skip
        if r.status_code >= 500:
            failures.append((r.status_code, ascii(values)[:200], ascii(content)[:200]))

    for p in params:  # path parameters are required, so always in `required`
        for v in HOSTILE_TEXT:
            send({**required, p["name"]: v}, body)
    if base is not None:
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        fields = OPENAPI["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"]
        for field in fields:
            for v in HOSTILE_JSON:
                text = json.dumps({**base, field: "@"}).replace('"@"', v)
                send(required, text)
    assert not failures, failures


# ---------------------------------------------------------------- simulations, by hand
def _runs(settings: Settings) -> int:
    with psycopg.connect(settings.database_url or "") as conn:
        ((n,),) = conn.execute("SELECT count(*) FROM twin.sim_run").fetchall()
    return int(n)


MALFORMED: list[tuple[str, Any, str]] = [
    ("flood", {"return_period_years": "fifty"}, "return_period_years"),
    ("flood", {"return_period_years": 0}, "return_period_years"),
    ("flood", {"return_period_years": 1e9}, "return_period_years"),
    ("flood", {"duration_min": -5}, "duration_min"),
    ("flood", {"duration_min": 10**30}, "duration_min"),
    ("flood", {"peak_ratio": 1}, "peak_ratio"),
    ("flood", {"after_min": [1]}, "after_min"),
    ("flood", {"storm": "hurricane"}, "storm"),
    ("flood", {"dtype": "int8"}, "dtype"),
    ("flood", {"surprise": 1}, "surprise"),
    ("flood", {"rain_series": []}, "rain_series"),
    ("flood", {"rain_series": [[0, 1, 2]]}, "rain_series"),
    ("flood", {"rain_series": [["0", "x"]]}, "rain_series"),
    ("flood", {"rain_series": [[0, 5], [4 * 86400, 0]]}, "rain_series"),  # > 3 days
    ("flood", {"rain_series": [[-1e9, 1]], "after_min": 0}, "rain_series"),  # ends < 0
    ("flood", [1, 2], "body"),
    ("traffic", {"period": "noon"}, "period"),
    ("traffic", {"closures": ["flood:²"]}, "closures"),
    ("traffic", {"closures": ["flood:" + "9" * 5000]}, "closures"),
    ("traffic", {"closures": ["storm:1"]}, "closures"),
    ("traffic", {"closures": "flood:1"}, "closures"),
    ("traffic", {"close_links": ["a"]}, "close_links"),
    ("traffic", {"close_links": [2**70]}, "close_links"),
    ("traffic", {"zone_res": 15}, "zone_res"),
    ("traffic", {"gap": 0}, "gap"),
    ("traffic", {"max_iter": 10**9}, "max_iter"),
    ("traffic", {"peak_share": True, "extra": 1}, "extra"),
]


@pytest.mark.parametrize(("kind", "body", "field"), MALFORMED)
def test_malformed_simulation_requests_are_4xx_and_start_nothing(
    client: TestClient, twin_settings: Settings, kind: str, body: Any, field: str
) -> None:
    before = _runs(twin_settings)
    r = client.post(f"/api/simulations/{kind}", json=body)
    assert 400 <= r.status_code < 500, r.text
    assert field in r.text
    assert _runs(twin_settings) == before


@pytest.mark.parametrize(
    ("kind", "body", "field"), [m for m in MALFORMED if isinstance(m[1], dict)]
)
def test_malformed_process_inputs_are_400_and_start_nothing(
    client: TestClient, twin_settings: Settings, kind: str, body: Any, field: str
) -> None:
    """The same bodies as OGC API Processes inputs: a 400 naming the input, no run."""
    before = _runs(twin_settings)
    r = client.post(f"/processes/{kind}/execution", json={"inputs": body})
    assert r.status_code == 400, r.text
    assert field in r.json()["detail"] and r.json()["status"] == 400
    assert _runs(twin_settings) == before


# ------------------------------------------------------ regression tests, one per bug
@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "/api/tasks", '{"title": NaN, "area": "C"}'),
        ("POST", "/api/tasks", '{"title": "t", "priority": Infinity}'),
        ("PATCH", "/api/tasks/1", '{"priority": -Infinity}'),
        ("PATCH", "/api/alerts/1", '{"status": NaN}'),
        ("POST", "/api/simulations/flood", '{"return_period_years": Infinity}'),
        ("POST", "/api/simulations/traffic", '{"gap": NaN}'),
        ("POST", "/api/tasks", '{"title": "\\ud800", "area": "C"}'),
        ("PATCH", "/api/alerts/1", '{"status": "x\\udfff"}'),
    ],
)
def test_422_renders_nan_infinity_and_lone_surrogates(
    client: TestClient, method: str, url: str, body: str
) -> None:
    """Python's JSON parser takes NaN, Infinity and lone surrogates; the 422 echoes the input
    back, and rendering it failed (500: 'Out of range float values', 'surrogates not allowed')."""
    r = client.request(method, url, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail and all({"loc", "msg", "type"} <= set(d) for d in detail)


@pytest.mark.parametrize(
    "body", ['{"inputs": {"duration_min": NaN}}', '{"inputs": {"\\ud800": 1}}',
             '{"inputs": {"rain_series": [[0, Infinity]]}}'],
)  # fmt: skip
def test_process_inputs_with_nan_and_lone_surrogates_are_400(client: TestClient, body: str) -> None:
    r = client.post("/processes/flood/execution", content=body,
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 400, r.text
    assert r.json()["status"] == 400


def test_422_renders_a_body_of_another_media_type_that_is_not_utf8(client: TestClient) -> None:
    # Not JSON: FastAPI validates the raw bytes, and the 422 echoes them (was 500).
    r = client.post("/api/tasks", content=b"\xff\xfe\x00", headers={"content-type": "text/plain"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body"]


@pytest.mark.parametrize("h3", ["-1", "-89", "fffffffffffffffff", "9" * 30, str(2**63)])
def test_cell_ids_outside_64_bits_are_400(client: TestClient, h3: str) -> None:
    # h3.is_valid_cell raised OverflowError on hex outside 0..2**64-1 (500).
    r = client.get(f"/api/cells/{h3}")
    assert r.status_code == 400, r.text
    assert r.json()["parameter"] == "h3"


@pytest.mark.parametrize("cell", ["-1", "-fffffffffffffff"])
def test_task_cells_outside_64_bits_are_400(client: TestClient, cell: str) -> None:
    r = client.post("/api/tasks", json={"title": "t", "cell": cell})
    assert r.status_code == 400, r.text
    assert r.json()["parameter"] == "cell"


@pytest.mark.parametrize("area", ["²", "١٢", "9" * 5000])
@pytest.mark.parametrize(
    ("url", "params", "status"),
    [
        ("/api/alerts", {}, 400),
        ("/api/cockpit", {"level": "city"}, 400),
        ("/api/tasks", {}, 400),
    ],
)
def test_area_refs_of_non_ascii_digits_or_5000_digits_are_4xx(
    client: TestClient, url: str, params: dict[str, str], status: int, area: str
) -> None:
    # int('²') fails although '²'.isdigit(), and int() refuses more than 4300 digits (500).
    if url == "/api/cockpit" and len(area) > 200:
        status = 400  # the cockpit caps the text first
    r = client.get(url, params={**params, "area": area})
    assert r.status_code == status, r.text


@pytest.mark.parametrize("fid", ["²", "9" * 5000])
def test_feature_ids_of_non_ascii_digits_or_5000_digits_are_404(
    client: TestClient, fid: str
) -> None:
    r = client.get(f"/collections/buildings/items/{fid}")
    assert r.status_code == 404, r.text


def test_features_offset_beyond_bigint_is_422(client: TestClient) -> None:
    # OFFSET 2**63 was a DataError from PostgreSQL: 400 without naming the parameter.
    r = client.get("/collections/buildings/items", params={"offset": 2**63})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", "offset"]
    assert (
        client.get("/collections/buildings/items", params={"offset": 2**63 - 1}).json()[
            "numberReturned"
        ]
        == 0
    )


@pytest.mark.parametrize(
    "as_of", ["0001-01-01", "0001-01-01T00:00:00+14:00", "0002-12-31T23:59:59"]
)
def test_cockpit_as_of_too_early_for_its_period_is_400(client: TestClient, as_of: str) -> None:
    # as_of - 2 periods fell before year 1 (OverflowError: 500).
    r = client.get("/api/cockpit", params={"level": "city", "as_of": as_of})
    assert r.status_code == 400, r.text
    assert r.json()["parameter"] == "as_of"
    ok = client.get(
        "/api/cockpit", params={"level": "city", "as_of": "0100-01-01", "period": "366d"}
    )
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        ("/api/addresses", {"q": "a\x00b"}, "q"),
        ("/api/alerts", {"area": "\x00"}, "area"),
        ("/api/alerts", {"rule": "x\x00"}, "rule"),
        ("/api/tasks", {"area": "C\x00"}, "area"),
        ("/api/cockpit", {"level": "city", "area": "\x00"}, "area"),
    ],
)
def test_nul_in_text_parameters_is_422_naming_them(
    client: TestClient, url: str, params: dict[str, str], field: str
) -> None:
    # PostgreSQL text cannot hold NUL: the driver's DataError was a 400 naming nothing.
    r = client.get(url, params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", field]


def test_nul_in_a_feature_filter_is_400_naming_it(client: TestClient) -> None:
    r = client.get("/collections/buildings/items", params={"use": "office\x00"})
    assert r.status_code == 400, r.text
    assert r.json()["parameter"] == "use"


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("POST", "/api/tasks", {"title": "a\x00", "area": "C"}, "title"),
        ("POST", "/api/tasks", {"title": "t", "area": "C", "description": "\x00"}, "description"),
        ("POST", "/api/tasks", {"title": "t", "area": "C", "note": "\x00"}, "note"),
        ("POST", "/api/tasks", {"title": "t", "area": "C\x00"}, "area"),
        ("POST", "/api/tasks", {"title": "t", "area": "C\ud800"}, "area"),
        ("PATCH", "/api/tasks/1", {"priority": 3, "note": "x\x00"}, "note"),
        ("PATCH", "/api/tasks/1", {"area": "\x00"}, "area"),
        ("PATCH", "/api/tasks/1", {"area": "\udc80"}, "area"),
    ],
)
def test_nul_or_lone_surrogates_in_task_text_are_422_naming_the_field(
    client: TestClient, method: str, url: str, body: dict[str, Any], field: str
) -> None:
    # NUL reached PostgreSQL (400 naming nothing); a lone surrogate in a field without a length
    # limit reached the driver's UTF-8 encoder (500).
    content = json.dumps(body)  # ASCII with \\u escapes, as any JSON client may send
    r = client.request(method, url, content=content, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"][0]["loc"]
