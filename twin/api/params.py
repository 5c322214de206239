"""Parameter types shared by the routers: constraints FastAPI checks, answering 422 naming the
parameter or field."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field


def postgres_text(value: str) -> str:
    """``value``, if PostgreSQL can store it as text: no NUL character, and valid Unicode.

    JSON lets a client send a lone surrogate (``"\\ud800"``), which has no UTF-8 form; a plain
    ``str`` field accepts it, and the database driver would fail on it (500).
    """
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\x00) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (a lone surrogate has no UTF-8 form)") from None
    return value


#: A string that may be bound to a PostgreSQL text parameter (the schema says: no NUL).
Text = Annotated[
    str, AfterValidator(postgres_text), Field(json_schema_extra={"pattern": "^[^\\x00]*$"})
]


def iso_text(value: object) -> object:
    """Refuse a number where a date-time is documented: pydantic would read ``0`` as 1970."""
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 date-time string with an offset")
    return value


#: A date-time with a UTC offset, given as ISO 8601 text (as the schema documents it).
Timestamp = Annotated[AwareDatetime, BeforeValidator(iso_text)]


def json_integer(value: object) -> object:
    """An integer as JSON Schema has it: ``3`` and ``3.0``, never ``"3"`` nor ``true``
    (pydantic's lax mode takes both, strict mode refuses ``3.0``). Use it after the bounds,
    ``Annotated[int, Field(ge=1), BeforeValidator(json_integer)]``, so that the schema keeps
    them as ``minimum`` and ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value
