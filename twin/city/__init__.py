"""Building the city model: the synthetic demo city, loading, and joins onto H3 cells."""
