"""The attacker of issue 24: an anonymous caller fetches every people count it can get and
solves for the hidden ones as a linear system.

It reads every resolution of ``/api/cells`` for each people metric, every cell card (age bands),
the cell tiles, every risk layer at every resolution, every flood run's cells at every
resolution and its summary (also as OGC API Processes job results), and the cockpits. It models the truth as unknown atoms (residents
per finest cell and age band, jobs per finest cell, affected people per finest cell and run),
writes every published number as an equation over them, and asserts that no hidden count's
vector lies in the row space of the equations: no hidden value is pinned down. Its relations
come from h3 and numpy, not from the twin's suppression code.

It runs on the tiny demo city (k = 10) and on a second generated city with k = 40, where most
cells are small.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h3
import mapbox_vector_tile
import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from twin.api.app import create_app
from twin.settings import Settings

WORLD = "-180,-90,180,90"
ELDERLY = ("60-74", "75+")
METRICS = ("population", "elderly", "jobs")
SPARSE_K = 40
# People inputs of the risk layers: the quantity each repeats, and how (value -> equation).
CELL_INPUTS = {"population": "population", "jobs": "jobs"}


class System:
    """Equations over unknown atoms; columns are atoms, each equation a sparse row."""

    def __init__(self) -> None:
        self.atoms: dict[tuple[Any, ...], int] = {}
        self.rows: list[dict[int, float]] = []
        self.hidden: list[tuple[str, dict[int, float]]] = []

    def col(self, atom: tuple[Any, ...]) -> int:
        return self.atoms.setdefault(atom, len(self.atoms))

    def vec(self, atoms: list[tuple[Any, ...]], coef: float = 1.0) -> dict[int, float]:
        return {self.col(a): coef for a in atoms}

    def publish(self, vec: dict[int, float]) -> None:
        if vec:
            self.rows.append(vec)

    def hide(self, name: str, vec: dict[int, float]) -> None:
        if vec:
            self.hidden.append((name, vec))

    def pinned(self) -> list[str]:
        """Hidden nodes whose vector is in the row space of the published rows."""
        n = len(self.atoms)
        # Atoms published alone are known: drop them (they move to the right-hand side).
        known = {next(iter(r)) for r in self.rows if len(r) == 1}
        cols = [c for c in range(n) if c not in known]
        pos = {c: i for i, c in enumerate(cols)}
        a = np.zeros((len(self.rows), len(cols)))
        for i, r in enumerate(self.rows):
            for c, v in r.items():
                if c in pos:
                    a[i, pos[c]] = v
        a = a[np.abs(a).sum(axis=1) > 0]
        basis = np.zeros((0, len(cols)))
        if a.size:
            _, s, vt = np.linalg.svd(a, full_matrices=False)
            basis = vt[: int((s > 1e-9 * s[0]).sum())]
        out = []
        for name, vec in self.hidden:
            h = np.zeros(len(cols))
            for c, v in vec.items():
                if c in pos:
                    h[pos[c]] = v
            resid = h - (h @ basis.T) @ basis if basis.size else h
            if np.linalg.norm(resid) < 1e-6:
                out.append(name)
        return out


def get(client: TestClient, url: str, **params: Any) -> Any:
    r = client.get(url, params=params or None)
    assert r.status_code == 200, (url, params, r.text[:300])
    return r.json()


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def under(cell: str, fine: list[str]) -> list[str]:
    r = h3.get_resolution(cell)
    return [f for f in fine if h3.cell_to_parent(f, r) == cell]


def attack(client: TestClient, resolutions: list[int], k: int) -> tuple[System, dict[str, int]]:
    """Gather everything public about people and write it as equations. Returns the system
    and how many published numbers of each kind went in."""
    res_list = sorted(resolutions)
    finest = res_list[-1]
    sysm = System()
    seen = {"cells": 0, "bands": 0, "tiles": 0, "risk": 0, "flood": 0, "cockpit": 0}
    # Cell statistics: every metric at every resolution, the age bands of every card.
    listed: dict[tuple[str, str], int | None] = {}
    for res in res_list:
        for m in METRICS:
            for c in get(client, "/api/cells", bbox=WORLD, res=res, metric=m)["cells"]:
                listed[(c["h3"], m)] = c["value"]
    cells = sorted({c for c, _ in listed})
    fine = [c for c in cells if h3.get_resolution(c) == finest]
    bands_of: dict[str, dict[str, int | None]] = {}
    for c in cells:
        card = get(client, f"/api/cells/{c}")["cell"]
        bands_of[c] = card["population_by_age"]
    bands = sorted({b for m in bands_of.values() for b in m})
    kids = {c: under(c, fine) for c in cells}

    def residents(c: str, only: tuple[str, ...] | None = None) -> list[tuple[Any, ...]]:
        return [("age", f, b) for f in kids[c] for b in bands if only is None or b in only]

    def node(c: str, m: str) -> list[tuple[Any, ...]]:
        if m == "population":
            return residents(c)
        if m == "elderly":
            return residents(c, ELDERLY)
        if m == "jobs":
            return [("jobs", f) for f in kids[c]]
        return residents(c, (m[4:],))  # "age:<band>"

    shown: dict[tuple[str, str], int | None] = dict(listed)
    for c, m in bands_of.items():
        for b in bands:
            shown[(c, f"age:{b}")] = m.get(b, 0)
    # Tiles: what they show must be what the API shows (a value the API hides would leak).
    for res, z in zip(res_list, (10, 12, 14, 15), strict=False):
        at_res = [c for c in cells if h3.get_resolution(c) == res]
        tiles = {tile_of(lon, lat, z) for lat, lon in (h3.cell_to_latlng(c) for c in at_res)}
        for x, y in tiles:
            r = client.get(f"/tiles/cells/{z}/{x}/{y}.mvt")
            assert r.status_code == 200
            for feat in mapbox_vector_tile.decode(r.content).get("cells", {}).get("features", []):
                p = feat["properties"]
                for m in METRICS:
                    if (p.get("h3"), m) in listed and p.get(m) is not None:
                        seen["tiles"] += 1
                        assert listed[(p["h3"], m)] == p[m], (p["h3"], m, "tile shows more")
    for (c, m), v in shown.items():
        if v is None:
            sysm.hide(f"{m}@{c}", sysm.vec(node(c, m)))
        else:
            assert v == 0 or v >= k, (c, m, v)  # primary suppression
            seen["cells" if not m.startswith("age:") else "bands"] += 1
            sysm.publish(sysm.vec(node(c, m)))
    # Risk layers: a people component's value is that count; a score is invertible to its
    # people inputs, so a shown score with a hidden people input is a leak in itself.
    layers = get(client, "/api/layers")["layers"]
    flood_runs = [r for r in get(client, "/api/simulations", kind="flood")["runs"]
                  if r["status"] == "succeeded"]  # fmt: skip
    latest = max((r["id"] for r in flood_runs), default=None)
    rows_of: dict[tuple[str, str], dict[str, Any]] = {}
    flood_risk: list[str] = []
    for lyr in layers:
        people = [i["name"] for i in lyr.get("inputs", []) if i.get("people")]
        for res in [r for r in res_list if r <= lyr["res"]]:
            for row in get(client, "/api/risk", layer=lyr["id"], res=res)["cells"]:
                if res != lyr["res"]:
                    continue
                rows_of[(lyr["id"], row["h3"])] = row
                comps = row["components"]
                for name in people:
                    value = comps.get(name, {}).get("value")
                    if value is None:
                        assert row["score"] is None, (lyr["id"], row["h3"], "score reveals", name)
                        continue
                    seen["risk"] += 1
                    c = row["h3"]
                    if name in CELL_INPUTS and c in kids:
                        sysm.publish(sysm.vec(node(c, CELL_INPUTS[name])))
                    elif name == "exposed_people" and c in kids:
                        hc = comps.get("hazard_class", {}).get("value")
                        if hc:  # exposed = class / 3 x residents
                            sysm.publish(sysm.vec(residents(c)))
                    elif name == "affected_people" and latest is not None:
                        flood_risk.append(c)  # written once the run's cells are known
    for (lid, c), row in rows_of.items():  # the one map repeats each layer's score
        if lid != "onemap":
            continue
        for part, comp in row["components"].items():
            if isinstance(comp, dict) and comp.get("score") is not None and (part, c) in rows_of:
                assert rows_of[(part, c)]["score"] is not None, ("onemap shows", part, c)
    # Flood runs: affected people per cell at every resolution, and the run's total.
    for run in flood_runs:
        per_res: dict[int, list[dict[str, Any]]] = {}
        for res in res_list:
            per_res[res] = get(client, f"/api/simulations/{run['id']}/cells", res=res)["cells"]
        fine_f = [c["h3"] for c in per_res[finest]]
        for res, rows in per_res.items():
            for c in rows:
                atoms = [("flood", run["id"], f) for f in fine_f
                         if h3.cell_to_parent(f, res) == c["h3"]]  # fmt: skip
                if c["affected_people"] is None:
                    sysm.hide(f"flood{run['id']}@{c['h3']}", sysm.vec(atoms))
                else:
                    assert c["affected_people"] == 0 or c["affected_people"] >= k
                    seen["flood"] += 1
                    sysm.publish(sysm.vec(atoms))
        if run["id"] == latest:  # flood_exposure's affected_people repeat this run's cells
            for c in flood_risk:
                r = h3.get_resolution(c)
                sysm.publish(sysm.vec([("flood", latest, f) for f in fine_f
                                       if h3.cell_to_parent(f, r) == c]))  # fmt: skip
        total = run["summary"].get("affected_people")
        # The same run through OGC API Processes: whatever its results show is published too.
        via_jobs = get(client, f"/jobs/{run['id']}/results")["summary"].get("affected_people")
        atoms = [("flood", run["id"], f) for f in fine_f]
        if total is None and via_jobs is None:
            sysm.hide(f"flood{run['id']}", sysm.vec(atoms))
        else:
            sysm.publish(sysm.vec(atoms))
    # City totals of the cell statistics: the sum over the coarsest cells of each metric is
    # what a reader assumes known when every coarsest cell is shown; the cockpit shows areas
    # only rounded to k (an interval, not an equation): check that it does.
    city = get(client, "/api/cockpit", level="city")
    todo = [city] + [get(client, c["cockpit"]) for c in city["children"][:20]]
    for cp in todo:
        pops = [i["value"] for i in cp["indicators"] if i["id"] == "population"]
        pops += [c["figures"]["population"] for c in cp["children"]]
        for v in pops:
            seen["cockpit"] += 1
            assert v is None or v % k == 0, ("cockpit shows an exact count", v)
    return sysm, seen


def check(client: TestClient, settings: Settings) -> None:
    sysm, seen = attack(client, settings.h3_resolutions, settings.suppression_k)
    assert sysm.hidden, "the city must hide something, or the attack proves nothing"
    assert seen["cells"] and seen["bands"] and seen["risk"] and seen["tiles"], seen
    assert seen["flood"] and seen["cockpit"], seen
    assert sysm.pinned() == []


def test_tiny_demo_leaks_no_hidden_count(tiny_client: TestClient, tiny_settings: Settings) -> None:
    check(tiny_client, tiny_settings)


def test_the_attack_pins_counts_under_primary_suppression_alone(
    tiny_client: TestClient, tiny_settings: Settings
) -> None:
    """The attack can fail: publish every hidden count of k or more (primary suppression
    alone, true values from SQL) and it pins some of the small ones down."""
    k = tiny_settings.suppression_k
    sysm, _ = attack(tiny_client, tiny_settings.h3_resolutions, k)
    truth: dict[str, int] = {}
    with psycopg.connect(tiny_settings.database_url) as c:
        for cell, pop, eld, jobs, ages in c.execute(
            "SELECT twin.h3_to_hex(cell), population, elderly, jobs, population_by_age"
            " FROM twin.cell_stats"
        ):
            truth.update({f"population@{cell}": pop, f"elderly@{cell}": eld, f"jobs@{cell}": jobs})
            truth.update({f"age:{b}@{cell}": n for b, n in ages.items()})
    still = []
    for name, vec in sysm.hidden:
        if truth.get(name, 0) >= k:
            sysm.publish(vec)
        elif name in truth:
            still.append((name, vec))
    sysm.hidden = still
    assert still and sysm.pinned()


@pytest.fixture(scope="module")
def sparse_settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """A second generated city, suppressed with k = 40: most of its cells are small."""
    url = make_database("twin_sparse_demo")
    data = tmp_path_factory.mktemp("sparse-demo")
    env = {key: v for key, v in os.environ.items() if not key.startswith("TWIN_")}
    env.update(TWIN_DATABASE_URL=url, TWIN_DATA_DIR=str(data), TWIN_SUPPRESSION_K=str(SPARSE_K))
    r = subprocess.run(
        [sys.executable, "-m", "twin", "demo", "--size", "tiny", "--seed", "11", "--no-serve",
         "--storm-duration", "10min", "--json"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return Settings(_env_file=None, database_url=url, data_dir=Path(data), suppression_k=SPARSE_K)


@pytest.fixture(scope="module")
def sparse_client(sparse_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(sparse_settings)) as c:
        yield c


def test_sparse_city_leaks_no_hidden_count(
    sparse_client: TestClient, sparse_settings: Settings
) -> None:
    check(sparse_client, sparse_settings)
