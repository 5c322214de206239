"""Credentials are redacted in the logs: the filter on log records shaped as uvicorn's access
log makes them, and a real ``twin serve`` in a subprocess whose log we read."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.services import free_port
from twin.access.tokens import new_token
from twin.logredact import REDACTED, RedactCredentials, redact, uvicorn_log_config


def _access_record(path: str) -> logging.LogRecord:
    """A record as uvicorn's access logger makes it (its arguments, formatted later)."""
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5555", "GET", path, "1.1", 200), None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("path", "kept", "secret"),
    [
        ("/api/cells?token=twin_abc123", "/api/cells?token=", "twin_abc123"),
        ("/map?mode=grid&access_token=eyJhbGciOi.x.y", "mode=grid", "eyJhbGciOi"),
        ("/x?Authorization=Bearer%20abc&z=1", "z=1", "Bearer%20abc"),
        ("/x?api_key=k123456&apikey=k654321", "/x?api_key=", "k123456"),
        ("/x?password=hunter2;sig=deadbeef", "/x?password=", "hunter2"),
        ("/x?%74oken=percent-encoded-name", "/x?%74oken=", "percent-encoded-name"),
        ("/x?client_secret=s3&layer=cells", "layer=cells", "s3&"),
    ],
)
def test_credential_query_params_are_redacted(path: str, kept: str, secret: str) -> None:
    record = _access_record(path)
    assert RedactCredentials().filter(record) is True  # redacted, never dropped
    line = record.getMessage()
    assert secret not in line, line
    assert kept in line and REDACTED in line
    assert line.startswith('127.0.0.1:5555 - "GET /') and line.endswith('HTTP/1.1" 200')


def test_other_query_params_are_kept() -> None:
    record = _access_record("/api/cells?res=9&metric=jobs&keyword=x&monkey=1")
    RedactCredentials().filter(record)
    assert record.getMessage().endswith(
        '"GET /api/cells?res=9&metric=jobs&keyword=x&monkey=1 HTTP/1.1" 200'
    )


def test_twin_tokens_bearer_headers_and_url_passwords_anywhere() -> None:
    token = new_token()
    text = (
        f"user pasted {token} into /tiles/{token}/1/2/3.mvt; Authorization: Bearer abcdefgh123; "
        "db postgresql://twin:pa55word@db:5432/twin"
    )
    out = redact(text)
    assert token not in out and "abcdefgh123" not in out and "pa55word" not in out
    assert "postgresql://twin:" + REDACTED + "@db:5432/twin" in out
    record = logging.LogRecord("twin", logging.WARNING, __file__, 1, "got %(t)s", None, None)
    record.args = {"t": token}
    RedactCredentials().filter(record)
    assert record.getMessage() == f"got {REDACTED}"


def test_the_uvicorn_config_filters_every_handler() -> None:
    config = uvicorn_log_config()
    assert config["filters"]["redact_credentials"]["()"] is RedactCredentials
    for handler in config["handlers"].values():
        assert "redact_credentials" in handler["filters"]
    assert config["root"]["handlers"] == ["default"]


def test_twin_serve_writes_no_token_to_its_access_log(tmp_path: Path) -> None:
    """A real server (no database: /healthz answers 503, which is logged all the same)."""
    port = free_port()
    token = new_token()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(TWIN_DATA_DIR=str(tmp_path / "data"), TWIN_PORT=str(port))
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "twin", "serve"], cwd=tmp_path, env=env, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the server did not start: " + log.read_text()
                try:
                    r = httpx.get(
                        f"http://127.0.0.1:{port}/healthz",
                        params={"token": token, "access_token": "opaque-secret", "mode": "x"},
                        timeout=2,
                    )
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            assert r.status_code == 503  # no database here; the request is what matters
            r = httpx.get(f"http://127.0.0.1:{port}/tiles/{token}.json", timeout=5)
            assert r.status_code in (404, 503)
        finally:
            proc.terminate()
            proc.wait(30)
    text = log.read_text()
    assert "GET /healthz?token=" + REDACTED in text, text
    assert "mode=x" in text
    assert token not in text and "opaque-secret" not in text, text
