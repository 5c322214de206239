"""Simulation runs on the twin: inputs from the model, results back into it."""
