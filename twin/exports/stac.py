"""The twin's files as a STAC 1.1 catalogue (``GET /stac``): Catalog -> Collections -> Items.

Collections group the datasets of :mod:`twin.exports.inventory` that are files: the flood
runs' GeoTIFFs (``flood-runs``), the registered rasters (``rasters``), the bulk exports of the
feature collections (``exports``, one item per collection with an asset per format) and the
published PMTiles archives (``tiles``). An item is a dataset, its assets the dataset's
downloads. Only what the caller may obtain is listed; a collection without an item is left
out. Core STAC only (no extensions), so that a validator needs no schema beyond the core's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from twin.exports.inventory import Dataset, Inventory

STAC_VERSION = "1.1.0"
CATALOG_ID = "city-twin"
JSON = "application/json"
GEOJSON = "application/geo+json"

#: Collection id -> (inventory kind, title, description).
COLLECTIONS: dict[str, tuple[str, str, str]] = {
    "flood-runs": ("flood_run", "Flood simulation rasters",
                   "Maximum water depth and time of maximum (GeoTIFF, the city's projected CRS) "
                   "of each succeeded flood run on the twin."),
    "rasters": ("raster", "Model input rasters",
                "The DEM, roughness and drainage-capacity grids the flood model reads."),
    "exports": ("collection", "Bulk exports of the feature collections",
                "Each OGC API Features collection as one file: GeoParquet 1.1, FlatGeobuf, "
                "GeoPackage, CSV with WKT (the caller's rows, audited)."),
    "tiles": ("archive", "Map tile archives",
              "PMTiles v3 archives of the public vector tiles, for static hosting."),
}  # fmt: skip
#: The inventory kinds the STAC catalogue is made of.
KINDS = frozenset(kind for kind, _, _ in COLLECTIONS.values())


def _link(rel: str, href: str, kind: str = JSON, title: str | None = None) -> dict[str, str]:
    out = {"rel": rel, "href": href, "type": kind}
    if title:
        out["title"] = title
    return out


def _items(inv: Inventory, kind: str) -> list[Dataset]:
    return [d for d in inv.datasets
            if d.kind == kind and d.bbox is not None and any(x.download for x in d.distributions)
            and _when(d, inv) is not None]  # fmt: skip


def _when(d: Dataset, inv: Inventory) -> datetime | None:
    return d.modified or d.end or d.start or inv.modified


def _urls(base: str, cid: str | None = None, iid: str | None = None) -> str:
    if cid is None:
        return f"{base}/stac"
    if iid is None:
        return f"{base}/stac/collections/{cid}"
    return f"{base}/stac/collections/{cid}/items/{iid}"


def catalog(inv: Inventory, base: str) -> dict[str, Any]:
    """The landing Catalog: a child link per collection that has items for this caller."""
    children = [
        _link("child", _urls(base, cid), title=title)
        for cid, (kind, title, _) in COLLECTIONS.items() if _items(inv, kind)
    ]  # fmt: skip
    return {
        "type": "Catalog", "stac_version": STAC_VERSION, "stac_extensions": [],
        "id": CATALOG_ID, "title": f"{inv.city}: city twin files",
        "description": "Rasters, bulk exports and tile archives of the city twin (STAC).",
        "links": [
            _link("self", _urls(base)), _link("root", _urls(base)), *children,
            _link("alternate", f"{base}/catalog", "application/ld+json",
                  "The same datasets and more, as a DCAT-AP catalogue (JSON-LD)"),
        ],
    }  # fmt: skip


def _union(boxes: list[tuple[float, float, float, float]]) -> list[float]:
    if not boxes:
        return [-180.0, -90.0, 180.0, 90.0]
    return [min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes)]  # fmt: skip


def collection(inv: Inventory, base: str, cid: str) -> dict[str, Any] | None:
    """A Collection with an item link per item, None if unknown or empty for this caller."""
    if cid not in COLLECTIONS:
        return None
    kind, title, description = COLLECTIONS[cid]
    items = _items(inv, kind)
    if not items:
        return None
    times = [t for d in items for t in (d.start, d.end, _when(d, inv)) if t is not None]
    return {
        "type": "Collection", "stac_version": STAC_VERSION, "stac_extensions": [], "id": cid,
        "title": title, "description": description, "license": inv.license,
        "keywords": sorted({k for d in items for k in d.keywords}),
        "providers": [{"name": inv.publisher, "roles": ["producer", "host"]}],
        "extent": {
            "spatial": {"bbox": [_union([d.bbox for d in items if d.bbox is not None])]},
            "temporal": {"interval": [[min(times).isoformat(), max(times).isoformat()]]},
        },
        "links": [
            _link("self", _urls(base, cid)), _link("root", _urls(base)),
            _link("parent", _urls(base)),
            *(_link("item", _urls(base, cid, d.id), GEOJSON, d.title) for d in items),
        ],
    }  # fmt: skip


def _geometry(b: tuple[float, float, float, float]) -> dict[str, Any]:
    w, s, e, n = b
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def item(inv: Inventory, base: str, cid: str, iid: str) -> dict[str, Any] | None:
    """An Item (a dataset and its files as assets), None if not there for this caller."""
    if cid not in COLLECTIONS:
        return None
    d = next((x for x in _items(inv, COLLECTIONS[cid][0]) if x.id == iid), None)
    if d is None:
        return None
    when = _when(d, inv)
    assert when is not None and d.bbox is not None  # _items keeps only those with both
    props: dict[str, Any] = {"title": d.title, "description": d.description,
                             "datetime": when.isoformat(), "updated": when.isoformat(),
                             "license": inv.license}  # fmt: skip
    if d.start is not None and d.end is not None:
        props.update(start_datetime=d.start.isoformat(), end_datetime=d.end.isoformat())
    assets = {
        x.key: {"href": x.url, "type": x.media_type, "title": x.title, "roles": [x.role]}
        for x in d.distributions if x.download
    }  # fmt: skip
    out: dict[str, Any] = {
        "type": "Feature", "stac_version": STAC_VERSION, "stac_extensions": [], "id": d.id,
        "geometry": _geometry(d.bbox), "bbox": list(d.bbox), "properties": props,
        "links": [
            _link("self", _urls(base, cid, d.id), GEOJSON), _link("root", _urls(base)),
            _link("parent", _urls(base, cid)), _link("collection", _urls(base, cid)),
        ],
        "assets": assets, "collection": cid,
    }  # fmt: skip
    if d.landing:
        out["links"].append(_link("alternate", d.landing, JSON, "The dataset in the twin's API"))
    return out
