"""The risk one map: the layer catalog, per-cell scoring, compute and reads."""
