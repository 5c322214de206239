"""``twin serve``'s app: built from the environment, its start-up objects frozen."""

from __future__ import annotations

import gc

import pytest
from fastapi.testclient import TestClient

from twin.cli.serve import served_app


def test_served_app_freezes_what_the_start_up_left(
    monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", db_url)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        app = served_app()
        frozen = gc.get_freeze_count()
        # The imports and the app: far more objects than any request makes, out of every pass.
        assert frozen > 50_000
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
        # A full pass walks only what came after the freeze.
        assert len(gc.get_objects(generation=2)) < frozen
    finally:
        gc.unfreeze()
