"""Pydantic response models of the API routes, one module per router (issue 23 §6)."""
