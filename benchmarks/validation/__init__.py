"""Validation cases of the flood model (:func:`twin.sim.flood.simulate`) built from their
published specifications: each module builds one case, runs the twin and returns its errors
against the analytic solution (:class:`benchmarks.validation.result.CaseResult`).

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.validation.report   # docs/validation/
"""
