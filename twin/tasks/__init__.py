"""Tasks: the state machine (:mod:`twin.tasks.states`, pure) and dispatch, tracking and
listing on the database (:mod:`twin.tasks.service`). Imports neither FastAPI nor the CLI."""
