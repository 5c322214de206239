"""Bulk exports of the feature collections: GeoParquet 1.1, FlatGeobuf, GeoPackage, CSV (WKT).

The rows are the GeoJSON items route's (twin.features: the catalog's columns, the same
filters, people counts through the suppression model), read with a server-side cursor in
chunks and written chunk by chunk, so memory stays flat whatever the table's size. The rows
come in PostGIS's geometry sort order, which since PostGIS 3.1 is a Hilbert curve over the
bounding box centres: GeoParquet row groups are then spatially compact.
"""

from __future__ import annotations

from twin.exports.source import chunks, export_query
from twin.exports.writers import FORMATS, ExportFormat, write

__all__ = ["FORMATS", "ExportFormat", "chunks", "export_query", "write"]
