"""The issue-24 attacker (tests/api/test_attack.py) against the twin's own database, e.g. the
city `make demo` built:

    TWIN_PUBLIC_CLEARANCE=general .venv/bin/python benchmarks/privacy_attack.py

It reads everything an anonymous caller can fetch, solves for the hidden people counts as a
linear system, and prints what it read and how many hidden counts it pins (0 is the goal).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.api.test_attack import attack
from twin.api.app import create_app
from twin.db.engine import database_url
from twin.settings import Settings


def main() -> None:
    base = Settings()
    settings = Settings(database_url=database_url(base), data_dir=base.data_dir)
    t0 = time.perf_counter()
    with TestClient(create_app(settings)) as client:
        system, seen = attack(client, settings.h3_resolutions, settings.suppression_k)
    pinned = system.pinned()
    print(f"read {seen}; {len(system.rows):,} equations over {len(system.atoms):,} atoms, "
          f"{len(system.hidden):,} hidden; pinned {len(pinned)} {pinned[:10]} "
          f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
