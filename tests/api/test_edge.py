"""The HTTP edge, probed as an attacker would (issue 24, section 3), on the tiny demo twin:
body size limits before parsing, 422s that never echo the input, the Host header, security
headers and CORS, /healthz for operators only. Credentials in logs: tests/test_logredact.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from twin.access.tokens import add_user
from twin.api.app import create_app
from twin.api.limits import ROUTE_LIMITS
from twin.api.security_headers import MAP_CSP
from twin.settings import Settings

MIB = 2**20
EVIL = "evil.example"


@pytest.fixture(scope="module")
def client(tiny_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(tiny_settings)) as c:
        yield c


@pytest.fixture(scope="module")
def tokens(tiny_settings: Settings) -> dict[str, str]:
    with psycopg.connect(tiny_settings.database_url or "") as c:
        _, operator = add_user(c, "edge_operator", "operator")
        _, viewer = add_user(c, "edge_viewer", "viewer")
        c.commit()
    return {"operator": operator, "viewer": viewer}


def _tasks(settings: Settings) -> int:
    with psycopg.connect(settings.database_url or "") as c:
        ((n,),) = c.execute("SELECT count(*) FROM twin.task").fetchall()
    return int(n)


def _body(size: int) -> bytes:
    """A JSON task of exactly ``size`` bytes (its description fills it)."""
    head, tail = b'{"title": "t", "area": "C", "description": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


# ------------------------------------------------------------------ 1. body size limits
def test_a_body_over_the_default_limit_is_413_naming_the_limit(
    client: TestClient, tiny_settings: Settings
) -> None:
    before = _tasks(tiny_settings)
    r = client.post("/api/tasks", content=_body(MIB + 1),
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 413, r.text
    assert "1 MiB" in r.json()["detail"] and "1048576" in r.json()["detail"]
    assert r.json()["limit_bytes"] == MIB
    assert len(r.content) < 500  # nothing of the body comes back
    assert _tasks(tiny_settings) == before


def test_a_chunked_body_is_counted_and_413_past_the_limit(
    client: TestClient, tiny_settings: Settings
) -> None:
    before = _tasks(tiny_settings)
    data = _body(MIB + 10)

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for i in range(0, len(data), 64 * 1024):
            yield data[i : i + 64 * 1024]

    r = client.post("/api/tasks", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert "1 MiB" in r.json()["detail"]
    assert _tasks(tiny_settings) == before


def test_a_chunked_body_under_the_limit_is_served(
    client: TestClient, tiny_settings: Settings
) -> None:
    data = json.dumps({"title": "chunked", "area": "C"}).encode()
    r = client.post("/api/tasks", content=iter([data[:5], data[5:]]),
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["title"] == "chunked"


def test_the_limit_is_configurable(tiny_settings: Settings) -> None:
    settings = tiny_settings.model_copy(update={"max_body_bytes": 4096})
    with TestClient(create_app(settings)) as c:
        r = c.post("/api/tasks", content=_body(4097), headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert "4 KiB" in r.json()["detail"]
        r = c.post("/api/tasks", content=_body(4096), headers={"content-type": "application/json"})
        assert r.status_code == 201, r.text


def test_traffic_requests_have_a_larger_limit_and_capped_lists(client: TestClient) -> None:
    limit = ROUTE_LIMITS[("POST", "/api/simulations/traffic")]
    assert limit > MIB
    # 100,001 link ids of 12 digits: 1.3 MB, under the route's limit, over the list cap.
    body = json.dumps({"close_links": [10**11 + i for i in range(100_001)]}).encode()
    assert MIB < len(body) < limit
    r = client.post("/api/simulations/traffic", content=body,
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 422, r.text[:500]
    assert r.json()["detail"][0]["loc"] == ["body", "close_links"]
    assert len(r.content) < 1000  # the list does not come back
    r = client.post("/api/simulations/traffic", content=b"[" + b"1," * (limit // 2) + b"1]",
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 413, r.text[:500]
    assert "4 MiB" in r.json()["detail"]


def test_the_list_caps_of_the_request_models_are_422(client: TestClient) -> None:
    r = client.post("/api/simulations/traffic", json={"closures": ["flood:1"] * 21})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "closures"]
    r = client.post(
        "/api/simulations/flood", json={"rain_series": [[i, 1.0] for i in range(10_001)]}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "rain_series"]


def test_the_413_is_documented_on_routes_with_a_body(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op:
                assert "413" in op["responses"], f"{method} {path}"


# --------------------------------------------------------- 2. 422 never echoes the input
SECRET = "s3cr3t-input-" + "q" * 40


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "/api/tasks", {"title": SECRET * 10, "area": "C"}),  # too long
        ("POST", "/api/tasks", {"title": "t", "priority": SECRET}),  # not an int
        ("POST", "/api/tasks", {"title": "t", "area": "C", SECRET: 1}),  # extra field: loc only
        ("PATCH", "/api/alerts/1", {"status": SECRET}),  # not in the enum
        ("POST", "/api/simulations/traffic", {"period": SECRET}),
        ("POST", "/api/simulations/traffic", {"closures": [SECRET] * 21}),
        ("POST", "/api/simulations/flood", {"rain_series": [[SECRET, 1]]}),
    ],
)
def test_validation_errors_do_not_echo_the_input(
    client: TestClient, method: str, url: str, body: dict[str, Any]
) -> None:
    r = client.request(method, url, json=body)
    assert r.status_code == 422, r.text
    details = r.json()["detail"]
    assert details and all(set(d) == {"loc", "msg", "type"} for d in details), details
    for d in details:
        assert SECRET not in d["msg"] and SECRET * 2 not in json.dumps(d["loc"])


def test_query_validation_errors_do_not_echo_the_input(client: TestClient) -> None:
    r = client.get("/collections/buildings/items", params={"limit": SECRET})
    assert r.status_code == 422
    assert SECRET not in r.text
    assert r.json()["detail"] == [
        {"loc": ["query", "limit"], "msg": r.json()["detail"][0]["msg"], "type": "int_parsing"}
    ]


def test_malformed_json_is_422_without_the_input(client: TestClient) -> None:
    r = client.post("/api/tasks", content=b'{"title": "' + SECRET.encode() + b'"',
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 422
    assert SECRET not in r.text
    assert set(r.json()["detail"][0]) == {"loc", "msg", "type"}


# ------------------------------------------------------------------------ 3. Host header
#: What an anonymous caller can fetch that holds links: the OGC API, TileJSON, the style,
#: the map, the docs, and the trailing-slash redirects.
LINKED = ["/", "/?f=json", "/collections", "/collections/buildings",
          "/collections/buildings/items?limit=2", "/collections/buildings/items?limit=1&offset=1",
          "/collections/", "/collections/buildings/", "/conformance/", "/tiles/style.json",
          "/tiles/buildings.json", "/tiles/cells.json", "/map", "/docs", "/openapi.json",
          "/healthz/", "/api/layers/"]  # fmt: skip


def _feature_url(client: TestClient) -> str:
    fid = client.get("/collections/buildings/items?limit=1").json()["features"][0]["id"]
    return f"/collections/buildings/items/{fid}"


def _evil_get(c: TestClient, url: str) -> Any:
    return c.get(url, headers={"host": EVIL, "x-forwarded-host": EVIL}, follow_redirects=False)


def test_an_untrusted_host_is_400_without_echo(client: TestClient) -> None:
    for url in [*LINKED, _feature_url(client)]:
        r = _evil_get(client, url)
        assert r.status_code == 400, url
        assert EVIL not in r.text and EVIL not in r.headers.get("location", "")
        assert r.headers["x-content-type-options"] == "nosniff"  # headers on the refusal too
    assert client.get("/healthz", headers={"host": "localhost:8000"}).status_code == 200
    assert client.get("/healthz", headers={"host": "[::1]:8000"}).status_code == 200
    assert client.get("/healthz", headers={"host": "LOCALHOST."}).status_code == 200


@pytest.mark.parametrize(
    ("update", "expect"),
    [
        # Any Host served: links use the address the connection arrived on.
        ({"allowed_hosts": ["*"]}, "http://testserver:80"),
        ({"public_url": "https://twin.example.org", "allowed_hosts": ["*"]},
         "https://twin.example.org"),
        ({"public_url": "https://twin.example.org/city/", "allowed_hosts": ["*"]},
         "https://twin.example.org/city"),
    ],
)  # fmt: skip
def test_links_and_redirects_never_carry_the_host_header(
    tiny_settings: Settings, update: dict[str, Any], expect: str
) -> None:
    with TestClient(create_app(tiny_settings.model_copy(update=update))) as c:
        urls = [*LINKED, _feature_url(c)]
        seen_links = 0
        for url in urls:
            r = _evil_get(c, url)
            assert r.status_code != 500, (url, r.status_code)
            assert EVIL not in r.text, url
            assert EVIL not in r.headers.get("location", ""), url
            if r.status_code in (307, 308):
                assert r.headers["location"].startswith(expect), (url, r.headers["location"])
            if "http" in r.text and url.startswith(("/collections", "/tiles")):
                seen_links += 1
                assert expect in r.text, url
        assert seen_links >= 5
        style = _evil_get(c, "/tiles/style.json").json()
        assert style["sources"]["buildings"]["url"] == f"{expect}/tiles/buildings.json"


def test_a_public_url_makes_its_host_trusted(tiny_settings: Settings) -> None:
    settings = tiny_settings.model_copy(update={"public_url": "https://twin.example.org"})
    with TestClient(create_app(settings)) as c:
        r = c.get("/collections", headers={"host": "twin.example.org"})
        assert r.status_code == 200
        assert r.json()["links"][0]["href"] == "https://twin.example.org/collections"
        assert c.get("/collections", headers={"host": EVIL}).status_code == 400


def test_subdomain_patterns(tiny_settings: Settings) -> None:
    settings = tiny_settings.model_copy(update={"allowed_hosts": ["*.example.org"]})
    with TestClient(create_app(settings)) as c:
        assert c.get("/healthz", headers={"host": "a.example.org"}).status_code == 200
        assert c.get("/healthz", headers={"host": "example.org.evil.example"}).status_code == 400
        assert c.get("/healthz", headers={"host": "localhost"}).status_code == 400


# ------------------------------------------------------------- 4. security headers, CORS
def test_security_headers_on_the_map_and_the_api(client: TestClient) -> None:
    for url in ["/map", "/api/layers", "/collections", "/tiles/style.json", "/healthz",
                "/api/no-such-route", "/static/map.js"]:  # fmt: skip
        r = client.get(url)
        assert r.headers["x-content-type-options"] == "nosniff", url
        assert r.headers["x-frame-options"] == "DENY", url
        assert r.headers["referrer-policy"] == "no-referrer", url
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], url
    csp = client.get("/map").headers["content-security-policy"]
    assert csp == MAP_CSP
    assert "worker-src 'self' blob:" in csp and "img-src 'self' data: blob:" in csp
    assert "'unsafe-eval'" not in csp and "script-src 'self';" in csp
    assert (
        client.get("/api/layers")
        .headers["content-security-policy"]
        .startswith("default-src 'none'")
    )


def test_cors_is_off_by_default(client: TestClient) -> None:
    origin = {"origin": "https://other.example"}
    r = client.get("/api/layers", headers=origin)
    assert "access-control-allow-origin" not in r.headers
    r = client.options("/api/layers", headers={**origin, "access-control-request-method": "GET"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_for_configured_origins(tiny_settings: Settings) -> None:
    settings = tiny_settings.model_copy(update={"cors_origins": ["https://app.example"]})
    with TestClient(create_app(settings)) as c:
        r = c.get("/api/layers", headers={"origin": "https://app.example"})
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = c.options("/api/tasks", headers={"origin": "https://app.example",
                                             "access-control-request-method": "POST",
                                             "access-control-request-headers": "authorization"})  # fmt: skip
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = c.get("/api/layers", headers={"origin": "https://other.example"})
        assert "access-control-allow-origin" not in r.headers


# ---------------------------------------------------------------- 6. /healthz for operators
def test_healthz_shows_versions_to_operators_only(
    client: TestClient, tokens: dict[str, str]
) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert "PostgreSQL" not in r.text and "server_version" not in r.text
    viewer = client.get("/healthz", headers={"authorization": f"Bearer {tokens['viewer']}"})
    assert viewer.json() == {"status": "ok"}
    op = client.get("/healthz", headers={"authorization": f"Bearer {tokens['operator']}"})
    assert op.status_code == 200
    db = op.json()["database"]
    assert db["server_version"] and db["postgis"] and db["schema_current"] is True
    assert op.json()["version"]
    bad = client.get("/healthz", headers={"authorization": "Bearer twin_" + "x" * 43})
    assert bad.status_code == 401


# ------------------------------------------- 7. what the schemathesis scan found (test_fuzz.py)
def test_405_lists_every_method_of_the_resource(client: TestClient) -> None:
    r = client.options("/api/tasks/1")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD, PATCH"  # was GET: the first route's only
    # A fixed path that PATCH /api/alerts/{alert_id} also matches: 405, not a 422 for the id.
    r = client.patch("/api/alerts/rules", json={"status": "resolved"})
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == "GET, HEAD"
    assert client.patch("/api/alerts/abc", json={"status": "resolved"}).status_code == 422


@pytest.mark.parametrize(
    "body",
    [{"priority": "1"}, {"priority": True}, {"priority": 1.5}, {"escalate": 0},
     {"due_at": 0}, {"note": "only a note"}, {}],
)  # fmt: skip
def test_task_changes_take_json_types_as_documented(
    client: TestClient, body: dict[str, Any]
) -> None:
    task = client.get("/api/tasks", params={"limit": 1}).json()["tasks"][0]["id"]
    r = client.patch(f"/api/tasks/{task}", json=body)
    assert r.status_code == 422, r.text


def test_an_integral_float_is_an_integer(client: TestClient) -> None:
    task = client.get("/api/tasks", params={"limit": 1}).json()["tasks"][0]["id"]
    r = client.patch(f"/api/tasks/{task}", json={"priority": 3.0})
    assert r.status_code == 200, r.text
    assert r.json()["priority"] == 3
