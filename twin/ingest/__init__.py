"""Real data into the model: OSM, vector files, people tables and rasters.

Every ingest runs in one transaction: on any error the database is exactly as before. Each ends
with a :class:`~twin.ingest.report.Report` of rows read, loaded, repaired and rejected (and why).
"""
