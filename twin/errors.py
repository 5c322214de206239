"""The twin's own exceptions, shared by every layer.

They say what went wrong in the caller's terms (the parameter, the resource); the web layer's
table (:mod:`twin.api.errors`) maps them to HTTP statuses, and the CLI prints them. Living
here, below the web layer, they let domain modules raise them without importing FastAPI.
"""

from __future__ import annotations


class TwinError(Exception):
    """Base of the twin's own exceptions."""


class NotFoundError(TwinError):
    """The named resource does not exist (or is outside the caller's scope)."""


class InvalidParameterError(TwinError, ValueError):
    """A request parameter is malformed; the message names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class UnauthorizedError(TwinError):
    """A bearer token that is malformed, unknown or revoked (401, never a silent downgrade)."""


class ForbiddenError(TwinError):
    """The caller's role does not allow this."""


class DatastreamNotOwnedError(ForbiddenError):
    """A device wrote (or tried to) a datastream that is not one of its own."""

    def __init__(self, device: str, datastream: int) -> None:
        super().__init__(f"device {device!r} may not write Datastreams({datastream}): it is not "
                         "one of its datastreams")  # fmt: skip
        self.device = device
        self.datastream = datastream


class ConflictError(TwinError):
    """The request conflicts with the current state (an illegal task transition, say)."""


class DatabaseUnavailableError(TwinError):
    """The database cannot be reached now; the API keeps running and recovers by itself."""
