"""The synthetic demo city: pure generators (no database, no files)."""
