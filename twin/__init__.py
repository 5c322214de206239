"""City digital twin: a PostGIS city information model on H3 cells."""

__version__ = "0.1.0"
