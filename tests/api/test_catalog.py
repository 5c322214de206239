"""``/catalog``: DCAT-AP 3 in JSON-LD, read by real JSON-LD processors (rdflib's parser, then
SPARQL over the graph; pyld's expansion), with no network. Expected values come from direct
SQL on the twin, the files on disk and the downloads themselves, never from the catalogue's
code; what a caller may not obtain is not listed."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rasterio
import shapely
from fastapi.testclient import TestClient
from pyld import jsonld
from rdflib import Graph, Literal, URIRef

from twin.api.app import create_app
from twin.settings import Settings

from .scope_world import make_world, sql

PREFIXES = """
PREFIX dcat: <http://www.w3.org/ns/dcat#>
PREFIX dct: <http://purl.org/dc/terms/>
PREFIX foaf: <http://xmlns.com/foaf/0.1/>
PREFIX locn: <http://www.w3.org/ns/locn#>
PREFIX void: <http://rdfs.org/ns/void#>
PREFIX rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#>
"""
COLLECTIONS = {"buildings": "building", "parcels": "parcel", "roads": "road_link",
               "events": "event", "hazard_sites": "hazard_site", "admin_areas": "admin_area"}  # fmt: skip
IANA = "http://www.iana.org/assignments/media-types/"
PUBLIC = "http://publications.europa.eu/resource/authority/access-right/PUBLIC"


def graph(doc: dict[str, Any]) -> Graph:
    return Graph().parse(data=json.dumps(doc), format="json-ld")


def query(g: Graph, text: str, **bindings: Any) -> list[Any]:
    return list(g.query(PREFIXES + text, initBindings=bindings))


def ds_iri(name: str) -> URIRef:
    return URIRef(f"http://testserver/catalog#{name}")


@pytest.fixture(scope="module")
def doc(tiny_client: TestClient) -> dict[str, Any]:
    r = tiny_client.get("/catalog")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/ld+json")
    out: dict[str, Any] = r.json()
    return out


@pytest.fixture(scope="module")
def g(doc: dict[str, Any]) -> Graph:
    return graph(doc)


def expected_datasets(settings: Settings) -> set[str]:
    """Every dataset of the twin the tests' public may obtain, from SQL and the layer files
    (that public is cleared for important data, tests/conftest.py; core layers stay out)."""
    names = set(COLLECTIONS)
    names |= {f"cells-r{r}" for (r,) in sql(settings, "SELECT DISTINCT res FROM twin.cell_stats")}
    names |= {
        f"risk-{p.stem}"
        for p in settings.layers_dir.glob("*.toml")
        if 'classification = "core"' not in p.read_text()
    } | {"risk-onemap"}
    runs = sql(
        settings, "SELECT id FROM twin.sim_run WHERE kind = 'flood' AND status = 'succeeded'"
    )
    names |= {f"flood-run-{r}" for (r,) in runs}
    rasters = sql(settings, "SELECT id, path FROM twin.raster_asset")
    names |= {f"raster-{i}" for i, p in rasters if os.path.isfile(p)}
    return names


def test_catalog_lists_every_dataset_with_the_dcat_ap_mandatory_properties(
    g: Graph, tiny_settings: Settings
) -> None:
    (cat,) = query(g, "SELECT ?c WHERE { ?c a dcat:Catalog }")
    got = {
        str(r.id)
        for r in query(
            g, "SELECT ?id WHERE { ?c a dcat:Catalog ; dcat:dataset ?d . ?d a dcat:Dataset ;"
            " dct:identifier ?id }",
        )
    }  # fmt: skip
    assert got == expected_datasets(tiny_settings)
    # The catalogue: title, description, publisher (an agent with a name), licence.
    assert query(g, "ASK { ?c a dcat:Catalog ; dct:title ?t ; dct:description ?d ;"
                 " dct:publisher [ a foaf:Agent ; foaf:name ?n ] ; dct:license ?l }")[0]  # fmt: skip
    # Every dataset: a title in English and in Chinese, a description, licence, access rights.
    required = {
        "English title": '?d dct:title ?x . FILTER(lang(?x) = "en")',
        "Chinese title": '?d dct:title ?x . FILTER(lang(?x) = "zh")',
        "description": "?d dct:description ?x", "licence": "?d dct:license ?x",
        "access rights": "?d dct:accessRights ?x", "distribution": "?d dcat:distribution ?x",
        "publisher": "?d dct:publisher ?x", "spatial extent": "?d dct:spatial [ dcat:bbox ?x ]",
    }  # fmt: skip
    missing = {
        what: [
            str(r.d)
            for r in query(
                g, f"SELECT ?d WHERE {{ ?d a dcat:Dataset . FILTER NOT EXISTS {{ {cond} }} }}"
            )
        ]
        for what, cond in required.items()
    }
    missing = {k: v for k, v in missing.items() if v}
    assert missing == {}, missing
    # Every distribution has an access URL (the one mandatory property) and an IANA media type.
    bad = query(
        g,
        """SELECT ?x WHERE { ?d dcat:distribution ?x .
        FILTER NOT EXISTS { ?x a dcat:Distribution ; dcat:accessURL ?u ; dcat:mediaType ?m .
                            FILTER(STRSTARTS(STR(?m), "http://www.iana.org/assignments/media-types/")) } }""",
    )
    assert bad == [] and cat


def test_collection_counts_extent_and_modified_are_the_data(
    g: Graph, tiny_settings: Settings
) -> None:
    for name, table in COLLECTIONS.items():
        ((n, w, s, e, nn),) = sql(tiny_settings, "SELECT count(*), ST_XMin(ST_Extent(geom)), ST_YMin(ST_Extent(geom)),"
                                  f" ST_XMax(ST_Extent(geom)), ST_YMax(ST_Extent(geom)) FROM twin.{table}")  # fmt: skip
        ((rows, box, modified),) = query(
            g, "SELECT ?n ?b ?m WHERE { ?d void:entities ?n ; dct:spatial [ dcat:bbox ?b ] ;"
            " dct:modified ?m }", d=ds_iri(name),
        )  # fmt: skip
        assert int(rows) == n > 0, name
        assert shapely.from_wkt(str(box)).bounds == pytest.approx((w, s, e, nn)), name
        ((version_at,),) = sql(
            tiny_settings, "SELECT updated_at FROM twin.layer_version WHERE layer = %s", (table,)
        )
        assert modified.toPython() == version_at, name
    # Events carry their time span; a GeoJSON geometry goes with the WKT.
    ((t0, t1),) = sql(tiny_settings, "SELECT min(occurred_at), max(occurred_at) FROM twin.event")
    ((start, end, geo),) = query(
        g, "SELECT ?a ?b ?g WHERE { ?d dct:temporal [ dcat:startDate ?a ; dcat:endDate ?b ] ;"
        " dct:spatial [ locn:geometry ?g ] }", d=ds_iri("events"),
    )  # fmt: skip
    assert (start.toPython(), end.toPython()) == (t0, t1)
    assert json.loads(str(geo))["type"] == "Polygon"


def test_download_distributions_are_what_the_downloads_send(
    g: Graph, tiny_client: TestClient
) -> None:
    rows = query(g, "SELECT ?u ?m WHERE { ?d dcat:distribution [ dcat:downloadURL ?u ;"
                 " dcat:mediaType ?m ] }", d=ds_iri("roads"))  # fmt: skip
    assert {str(u).rsplit("=", 1)[-1] for u, _ in rows} == {"parquet", "fgb", "gpkg", "csv"}
    for url, media in rows:
        r = tiny_client.get(str(url))
        assert r.status_code == 200, url
        assert r.headers["content-type"].split(";")[0] == str(media).removeprefix(IANA)


def test_flood_run_rasters_have_their_size_and_download(
    g: Graph, tiny_client: TestClient, tiny_settings: Settings
) -> None:
    ((run,),) = sql(
        tiny_settings,
        "SELECT max(id) FROM twin.sim_run WHERE kind = 'flood' AND status = 'succeeded'",
    )
    path = Path(tiny_settings.data_dir) / "runs" / str(run) / "max_depth.tif"
    rows = query(g, "SELECT ?u ?n WHERE { ?d dcat:distribution [ dcat:downloadURL ?u ; dcat:byteSize ?n ] }",
                 d=ds_iri(f"flood-run-{run}"))  # fmt: skip
    sizes = {str(u).rsplit("/", 1)[-1]: int(n) for u, n in rows}
    assert sizes["max_depth.tif"] == path.stat().st_size
    r = tiny_client.get(f"/files/runs/{run}/max_depth.tif")
    assert r.status_code == 200 and len(r.content) == path.stat().st_size
    with rasterio.open(io.BytesIO(r.content)) as src:
        assert src.count == 1 and src.crs is not None


def test_pyld_expands_it_offline(doc: dict[str, Any]) -> None:
    def no_network(url: str, options: Any = None) -> Any:
        raise AssertionError(f"the catalogue made the processor fetch {url}")

    jsonld.set_document_loader(no_network)
    expanded = jsonld.expand(doc)
    (cat,) = expanded
    assert cat["@type"] == ["http://www.w3.org/ns/dcat#Catalog"]
    datasets = cat["http://www.w3.org/ns/dcat#dataset"]
    assert all(d["@type"] == ["http://www.w3.org/ns/dcat#Dataset"] for d in datasets)
    langs = {t["@language"] for d in datasets for t in d["http://purl.org/dc/terms/title"]}
    assert langs == {"en", "zh"}


@pytest.fixture(scope="module")
def closed_client(tiny_settings: Settings) -> Iterator[TestClient]:
    """The same twin with the secure default: the public reads general data only."""
    with TestClient(
        create_app(tiny_settings.model_copy(update={"public_clearance": "general"}))
    ) as c:
        yield c


def test_what_the_caller_may_not_obtain_is_not_listed(
    closed_client: TestClient, tiny_settings: Settings
) -> None:
    doc = closed_client.get("/catalog").json()
    text = json.dumps(doc)
    g = graph(doc)
    ids = {
        str(r.id) for r in query(g, "SELECT ?id WHERE { ?d a dcat:Dataset ; dct:identifier ?id }")
    }
    assert "events" not in ids and "hazard_sites" not in ids
    assert "/collections/events" not in text and "/collections/hazard_sites" not in text
    assert "buildings" in ids
    # What is listed is public, and says so.
    rights = {
        str(r.a)
        for r in query(g, "SELECT DISTINCT ?a WHERE { ?d a dcat:Dataset ; dct:accessRights ?a }")
    }
    assert rights == {PUBLIC}
    # Core risk layers (built on personal data) are never public.
    core = [
        p.stem
        for p in tiny_settings.layers_dir.glob("*.toml")
        if 'classification = "core"' in p.read_text()
    ]
    assert core and not any(f"risk-{c}" in ids for c in core)


def test_a_district_user_counts_only_its_rows(
    tiny_client: TestClient, tiny_settings: Settings
) -> None:
    world = make_world(tiny_settings, "catalog")
    d = world["A"]
    doc = tiny_client.get("/catalog", headers=d.headers).json()
    g = graph(doc)
    ((n,),) = sql(
        tiny_settings,
        "SELECT count(*) FROM twin.event WHERE area_id IN (SELECT twin.area_subtree(%s))",
        (d.id,),
    )
    ((total,),) = sql(tiny_settings, "SELECT count(*) FROM twin.event")
    ((rows,),) = query(g, "SELECT ?n WHERE { ?d void:entities ?n }", d=ds_iri("events"))
    assert int(rows) == n < total
    # The city's fabric is the same for everyone.
    ((b,),) = query(g, "SELECT ?n WHERE { ?d void:entities ?n }", d=ds_iri("buildings"))
    assert b == Literal(
        sql(tiny_settings, "SELECT count(*) FROM twin.building")[0][0], datatype=b.datatype
    )
