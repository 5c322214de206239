"""Simulation cores (pure arrays) and their file formats."""
