"""Where the public TNTP test networks live (research licence: read in place, never copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def traffic_data() -> Path:
    """``TWIN_TRAFFIC_DATA``, else ``../shared/data/traffic`` beside the checkout, else /work's.

    Missing data fails the tests: the published answers are what they check against.
    """
    candidates = [
        os.environ.get("TWIN_TRAFFIC_DATA", ""),
        str(_ROOT.parent / "shared" / "data" / "traffic"),
        "/work/shared/data/traffic",
    ]
    for c in candidates:
        if c and (Path(c) / "Anaheim" / "Anaheim_net.tntp").is_file():
            return Path(c)
    pytest.fail("TNTP networks not found: set TWIN_TRAFFIC_DATA to the folder holding Anaheim/")
