"""The catalog as the API sees it: per settings, with the tile layer of each risk layer."""

from __future__ import annotations

from twin.risk.catalog import Catalog, Layer, load_catalog
from twin.settings import Settings
from twin.tiles.catalog import TileLayer, risk_tile_layer


def catalog_for(settings: Settings) -> Catalog:
    """The layer catalog of ``settings.layers_dir`` (re-read when a file changes)."""
    return load_catalog(settings.layers_dir, resolutions=settings.h3_resolutions)


def tile_layer(layer: Layer) -> TileLayer:
    return risk_tile_layer(
        layer.id, f"Risk: {layer.title}", layer.description or layer.title,
        res=layer.res, classification=layer.classification,
    )  # fmt: skip


_TILES: dict[str, tuple[Catalog, dict[str, TileLayer]]] = {}  # layers dir -> built


def risk_tiles(settings: Settings) -> dict[str, TileLayer]:
    """Tile layer id (``risk_<id>``) -> tile layer, for every layer and the one map.

    Built once per catalog (a new catalog object whenever a file changes): this sits on the
    tile hot path."""
    catalog = catalog_for(settings)
    key = str(settings.layers_dir)
    hit = _TILES.get(key)
    if hit is None or hit[0] is not catalog:
        hit = (catalog, {lyr.tile_id: tile_layer(lyr) for lyr in catalog.all_layers()})
        _TILES[key] = hit
    return hit[1]
