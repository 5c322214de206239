"""Vector tiles: the layer catalog, tile queries and the tile cache."""
