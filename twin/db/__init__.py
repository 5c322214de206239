"""Database: the private cluster, engines, the schema and its migrations."""
