"""Complementary suppression through the API: an anonymous reader gathers every people count
the twin publishes (the cell list at each resolution, every cell card, the cell tiles) and
attacks them with differences along the H3 hierarchy and the age bands; it must learn nothing
that primary suppression hid.

The relations come from h3 itself and the expected values from SQL on ``twin.cell_stats``,
not from ``twin.access.privacy``; the attacker is the one of ``tests/access/test_privacy.py``.
"""

from __future__ import annotations

import itertools
from typing import Any

import h3
import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.access.test_privacy import differencing_attack
from twin.settings import Settings

from .test_tiles import tile_of

FIELDS = ("population", "elderly", "jobs")
ELDERLY = ("60-74", "75+")


@pytest.fixture(scope="module")
def truth(tiny_settings: Settings) -> dict[tuple[str, str], int]:
    """Raw counts per (cell, field) straight from the table; fields include age bands."""
    out: dict[tuple[str, str], int] = {}
    with psycopg.connect(tiny_settings.database_url) as c:
        for cell, pop, eld, jobs, ages in c.execute(
            "SELECT twin.h3_to_hex(cell), population, elderly, jobs, population_by_age"
            " FROM twin.cell_stats"
        ):
            out[(cell, "population")], out[(cell, "elderly")], out[(cell, "jobs")] = pop, eld, jobs
            for band, n in ages.items():
                out[(cell, f"age:{band}")] = n
    return out


def published(
    tiny_client: TestClient, tiny_settings: Settings
) -> dict[tuple[str, str], int | None]:
    """Everything an anonymous reader gets from /api/cells and the cell cards."""
    shown: dict[tuple[str, str], int | None] = {}
    for res in tiny_settings.h3_resolutions:
        for field in FIELDS:
            r = tiny_client.get("/api/cells", params={"bbox": "-180,-90,180,90", "res": res,
                                                 "metric": field})  # fmt: skip
            assert r.status_code == 200, r.text
            for c in r.json()["cells"]:
                shown[(c["h3"], field)] = c["value"]
    for cell in {c for c, _ in shown}:
        card = tiny_client.get(f"/api/cells/{cell}").json()["cell"]
        for field in FIELDS:
            assert card[field] == shown[(cell, field)], (cell, field)  # card and list agree
        for band, n in card["population_by_age"].items():
            shown[(cell, f"age:{band}")] = n
    return shown


def relations(cells: set[str], bands: set[str], resolutions: list[int]) -> list[Any]:
    """Every additive relation a reader knows: parent = sum of children at the next
    resolution (cells without a row count zero), population = sum of bands, elderly = its two
    bands, population = elderly + the rest (an unpublished node), and the city total."""
    out: list[Any] = []
    fields = [*FIELDS, "rest", *(f"age:{b}" for b in bands)]
    res_sorted = sorted(resolutions)
    by_res = {r: sorted(c for c in cells if h3.get_resolution(c) == r) for r in res_sorted}
    for coarse, fine in itertools.pairwise(res_sorted):
        kids: dict[str, list[str]] = {}
        for c in by_res[fine]:
            kids.setdefault(h3.cell_to_parent(c, coarse), []).append(c)
        for parent, children in kids.items():
            for f in fields:
                out.append(((parent, f), [(c, f) for c in children]))
    for f in fields:
        out.append((("city", f), [(c, f) for c in by_res[res_sorted[0]]]))
    for c in cells:
        out.append(((c, "population"), [(c, f"age:{b}") for b in bands]))
        out.append(((c, "elderly"), [(c, f"age:{b}") for b in bands if b in ELDERLY]))
        out.append(((c, "population"), [(c, "elderly"), (c, "rest")]))
    return out


def fill(
    shown: dict[Any, int | None], truth: dict[Any, int], cells: set[str], bands: set[str]
) -> dict[Any, int | None]:
    """Complete the reader's table: absent bands are zero, 'rest' is unknown, city totals
    are public (the cockpit shows them)."""
    full = dict(shown)
    for c in cells:
        for b in bands:
            full.setdefault((c, f"age:{b}"), truth.get((c, f"age:{b}"), 0))
        full[(c, "rest")] = None
    top = min(h3.get_resolution(c) for c in cells)
    for f in [*FIELDS, "rest", *(f"age:{b}" for b in bands)]:
        full[("city", f)] = sum(
            truth.get((c, f), 0) if f != "rest" else
            truth[(c, "population")] - truth[(c, "elderly")]
            for c in cells if h3.get_resolution(c) == top
        )  # fmt: skip
    return full


def test_no_hidden_count_can_be_worked_out(
    tiny_client: TestClient, tiny_settings: Settings, truth: dict[tuple[str, str], int]
) -> None:
    k = tiny_settings.suppression_k
    shown = published(tiny_client, tiny_settings)
    cells = {c for c, _ in truth}
    assert {c for c, _ in shown} == cells  # every cell with people or jobs is listed
    bands = {f[4:] for _, f in truth if f.startswith("age:")}
    rels = relations(cells, bands, tiny_settings.h3_resolutions)
    full = fill(shown, truth, cells, bands)
    for key, value in shown.items():  # what is shown is true; what is small is hidden
        if value is not None:
            assert value == truth.get(key, 0)
        assert not 0 < truth.get(key, 0) < k or value is None, key
    learned = differencing_attack(full, rels)
    leaked = {n: v for n, v in learned.items() if n in shown and shown[n] is None}
    assert leaked == {}
    # A shown total minus its shown parts must not single out fewer than k people either.
    for total, parts in rels:
        if full.get(total) is not None and all(p in full for p in parts):
            rest = sum(truth.get(p, 0) for p in parts if full[p] is None and p[1] != "rest")
            assert not 0 < rest < k or any(p[1] == "rest" for p in parts), (total, rest)


def test_primary_suppression_alone_would_leak(
    tiny_settings: Settings, truth: dict[tuple[str, str], int]
) -> None:
    """The attack above is not vacuous: on this city, hiding only counts below k gives some
    of them away."""
    k = tiny_settings.suppression_k
    shown = {key: (None if 0 < v < k else v) for key, v in truth.items()}
    cells = {c for c, _ in truth}
    bands = {f[4:] for _, f in truth if f.startswith("age:")}
    learned = differencing_attack(fill(shown, truth, cells, bands),
                                  relations(cells, bands, tiny_settings.h3_resolutions))  # fmt: skip
    leaked = {n: v for n, v in learned.items() if n in shown and shown[n] is None}
    assert leaked and all(truth[n] == v for n, v in leaked.items())


def tiles_over(cells: set[str], z: int) -> set[tuple[int, int]]:
    return {tile_of(lon, lat, z) for lat, lon in (h3.cell_to_latlng(c) for c in cells)}


@pytest.mark.parametrize(("res", "z"), [(7, 10), (8, 12), (9, 14), (10, 15)])
def test_cell_tiles_hide_what_the_api_hides(
    tiny_client: TestClient, tiny_settings: Settings, res: int, z: int
) -> None:
    listed = {}
    for field in FIELDS:
        r = tiny_client.get("/api/cells", params={"bbox": "-180,-90,180,90", "res": res,
                                             "metric": field})  # fmt: skip
        for c in r.json()["cells"]:
            listed[(c["h3"], field)] = c["value"]
    cells = {c for c, _ in listed}
    seen = set()
    for x, y in tiles_over(cells, z):
        r = tiny_client.get(f"/tiles/cells/{z}/{x}/{y}.mvt")
        assert r.status_code == 200
        for feat in mapbox_vector_tile.decode(r.content)["cells"]["features"]:
            props = feat["properties"]
            if props["h3"] not in cells:
                continue
            seen.add(props["h3"])
            for field in FIELDS:
                assert props.get(field) == listed[(props["h3"], field)], (props["h3"], field)
    assert seen == cells
