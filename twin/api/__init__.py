"""The HTTP API (FastAPI): app factory in :mod:`twin.api.app`, one router per resource."""
