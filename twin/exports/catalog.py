"""The open-data catalogue as DCAT-AP 3 in JSON-LD (``GET /catalog``).

One ``dcat:Catalog`` of the datasets of :mod:`twin.exports.inventory` (what the caller may
obtain), each a ``dcat:Dataset`` with titles in English and Chinese (language maps), licence,
publisher, access rights (the EU access-right vocabulary, from the data class), spatial extent
(``dcat:bbox`` as a GeoSPARQL WKT literal and ``locn:geometry`` as GeoJSON), temporal coverage
where the data has time, ``dct:modified`` from the data, the row count (``void:entities``) and
its distributions (``dcat:accessURL``/``dcat:downloadURL``, ``dcat:mediaType`` as IANA IRIs,
``dcat:byteSize`` where the file exists). The two APIs behind the access URLs are
``dcat:DataService``s. The ``@context`` is inline, so a JSON-LD processor or a harvester
needs nothing from the network to read it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from twin.access.classification import rank
from twin.exports.inventory import OGC_FEATURES, TILEJSON, Dataset, Distribution, Inventory

MEDIA_TYPE_IRI = "http://www.iana.org/assignments/media-types/"
ACCESS_RIGHT_IRI = "http://publications.europa.eu/resource/authority/access-right/"
SPDX_IRI = "http://spdx.org/licenses/"
DCAT_AP = "http://data.europa.eu/r5r/"  # DCAT-AP 3 (the application profile's namespace)


def context(base: str) -> dict[str, Any]:
    """The JSON-LD context: plain keys for the DCAT, DCTERMS, FOAF, LOCN and VoID terms."""
    iri = {"@type": "@id"}
    lang = {"@container": "@language"}
    return {
        "@version": 1.1,
        "dcat": "http://www.w3.org/ns/dcat#",
        "dct": "http://purl.org/dc/terms/",
        "foaf": "http://xmlns.com/foaf/0.1/",
        "locn": "http://www.w3.org/ns/locn#",
        "gsp": "http://www.opengis.net/ont/geosparql#",
        "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
        "void": "http://rdfs.org/ns/void#",
        "xsd": "http://www.w3.org/2001/XMLSchema#",
        "twin": f"{base}/catalog/terms#",
        "id": "@id",
        "type": "@type",
        "Catalog": "dcat:Catalog",
        "Dataset": "dcat:Dataset",
        "Distribution": "dcat:Distribution",
        "DataService": "dcat:DataService",
        "Agent": "foaf:Agent",
        "Location": "dct:Location",
        "PeriodOfTime": "dct:PeriodOfTime",
        "ProvenanceStatement": "dct:ProvenanceStatement",
        "title": {"@id": "dct:title", **lang},
        "description": {"@id": "dct:description", **lang},
        "label": {"@id": "rdfs:label", **lang},
        "identifier": "dct:identifier",
        "keyword": {"@id": "dcat:keyword", "@container": "@set"},
        "dataset": {"@id": "dcat:dataset", "@container": "@set"},
        "service": {"@id": "dcat:service", "@container": "@set"},
        "distribution": {"@id": "dcat:distribution", "@container": "@set"},
        "publisher": "dct:publisher",
        "name": "foaf:name",
        "license": {"@id": "dct:license", **iri},
        "accessRights": {"@id": "dct:accessRights", **iri},
        "conformsTo": {"@id": "dct:conformsTo", **iri},
        "landingPage": {"@id": "dcat:landingPage", **iri},
        "accessURL": {"@id": "dcat:accessURL", **iri},
        "downloadURL": {"@id": "dcat:downloadURL", **iri},
        "mediaType": {"@id": "dcat:mediaType", **iri},
        "accessService": {"@id": "dcat:accessService", **iri},
        "endpointURL": {"@id": "dcat:endpointURL", **iri},
        "endpointDescription": {"@id": "dcat:endpointDescription", **iri},
        "servesDataset": {"@id": "dcat:servesDataset", "@type": "@id", "@container": "@set"},
        "byteSize": {"@id": "dcat:byteSize", "@type": "xsd:nonNegativeInteger"},
        "records": {"@id": "void:entities", "@type": "xsd:nonNegativeInteger"},
        "modified": {"@id": "dct:modified", "@type": "xsd:dateTime"},
        "startDate": {"@id": "dcat:startDate", "@type": "xsd:dateTime"},
        "endDate": {"@id": "dcat:endDate", "@type": "xsd:dateTime"},
        "spatial": "dct:spatial",
        "temporal": "dct:temporal",
        "provenance": "dct:provenance",
        "bbox": {"@id": "dcat:bbox", "@type": "gsp:wktLiteral"},
        "geometry": {"@id": "locn:geometry", "@type": "gsp:geoJSONLiteral"},
        "classification": "twin:classification",
        "obtainableBy": "twin:obtainableBy",
    }


def access_right(label: str, public_clearance: str) -> tuple[str, str]:
    """The EU access-right IRI of a data class and who may obtain it, in words."""
    if rank(label) <= rank(public_clearance):
        return ACCESS_RIGHT_IRI + "PUBLIC", "anyone, without signing in"
    if label == "important":
        return ACCESS_RIGHT_IRI + "RESTRICTED", "signed-in users (viewer and above)"
    return (ACCESS_RIGHT_IRI + "NON_PUBLIC",
            "analysts, operators and admins (aggregates only, never person rows)")  # fmt: skip


def wkt(b: tuple[float, float, float, float]) -> str:
    w, s, e, n = b
    return f"POLYGON(({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))"


def geojson(b: tuple[float, float, float, float]) -> str:
    w, s, e, n = b
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


def _time(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _distribution(d: Distribution, base: str, license_iri: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": d.url, "type": "Distribution", "title": {"en": d.title}, "accessURL": d.url,
        "mediaType": MEDIA_TYPE_IRI + d.media_type.split(";")[0].strip(), "license": license_iri,
    }  # fmt: skip
    if d.download:
        out["downloadURL"] = d.url
    if d.byte_size is not None:
        out["byteSize"] = d.byte_size
    if d.conforms_to:
        out["conformsTo"] = d.conforms_to
    if d.service:
        out["accessService"] = _service_id(d.service, base)
    return out


def _service_id(service: str, base: str) -> str:
    return f"{base}/" if service == "features" else f"{base}/tiles"


def _dataset(d: Dataset, inv: Inventory, base: str, public_clearance: str) -> dict[str, Any]:
    license_iri = SPDX_IRI + inv.license
    rights, who = access_right(d.label, public_clearance)
    out: dict[str, Any] = {
        "id": f"{base}/catalog#{d.id}", "type": "Dataset", "identifier": d.id,
        "title": {"en": d.title, "zh": d.title_zh}, "description": {"en": d.description},
        "keyword": list(d.keywords), "publisher": {"id": f"{base}/catalog#publisher"},
        "license": license_iri, "accessRights": rights, "classification": d.label,
        "obtainableBy": who,
        "distribution": [_distribution(x, base, license_iri) for x in d.distributions],
    }  # fmt: skip
    if d.bbox is not None:
        out["spatial"] = {"type": "Location", "bbox": wkt(d.bbox), "geometry": geojson(d.bbox)}
    if d.start is not None or d.end is not None:
        period = {"type": "PeriodOfTime"}
        if d.start is not None:
            period["startDate"] = d.start.isoformat()
        if d.end is not None:
            period["endDate"] = d.end.isoformat()
        out["temporal"] = period
    if d.modified is not None:
        out["modified"] = d.modified.isoformat()
    if d.rows is not None:
        out["records"] = d.rows
    if d.landing:
        out["landingPage"] = d.landing
    if inv.source:
        out["provenance"] = {"type": "ProvenanceStatement", "label": {"en": inv.source}}
    return out


def _services(inv: Inventory, base: str) -> list[dict[str, Any]]:
    served: dict[str, list[str]] = {"features": [], "tiles": []}
    for d in inv.datasets:
        for kind in {x.service for x in d.distributions if x.service}:
            served[kind].append(f"{base}/catalog#{d.id}")
    specs = {
        "features": ("OGC API Features", f"{base}/", f"{base}/openapi.json", OGC_FEATURES),
        "tiles": ("Vector tiles (TileJSON 3.0.0, Mapbox Vector Tiles)", f"{base}/tiles",
                  f"{base}/tiles/style.json", TILEJSON),
    }  # fmt: skip
    return [
        {"id": _service_id(kind, base), "type": "DataService", "title": {"en": title},
         "endpointURL": url, "endpointDescription": desc, "conformsTo": spec,
         "license": SPDX_IRI + inv.license, "servesDataset": served[kind]}
        for kind, (title, url, desc, spec) in specs.items() if served[kind]
    ]  # fmt: skip


def dcat(inv: Inventory, base: str, *, public_clearance: str) -> dict[str, Any]:
    """The catalogue document (JSON-LD) of ``inv``; links absolute from ``base``."""
    out: dict[str, Any] = {
        "@context": context(base),
        "id": f"{base}/catalog",
        "type": "Catalog",
        "conformsTo": DCAT_AP,
        "title": {
            "en": f"{inv.city}: open data of the city twin",
            "zh": f"{inv.city}城市孪生开放数据",
        },
        "description": {
            "en": "Datasets of the city twin by data class: what the caller may obtain, with "
            "download links per format (OGC API Features, bulk files, vector tiles, rasters).",
            "zh": "城市孪生按分级分类开放的数据目录。",
        },
        "publisher": {"id": f"{base}/catalog#publisher", "type": "Agent", "name": inv.publisher},
        "license": SPDX_IRI + inv.license,
        "landingPage": f"{base}/",
        "service": _services(inv, base),
        "dataset": [_dataset(d, inv, base, public_clearance) for d in inv.datasets],
    }
    if inv.modified is not None:
        out["modified"] = _time(inv.modified)
    return out
