"""Parameter types shared by the routers: constraints FastAPI checks, answering 422 naming the
parameter or field."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


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


#: A string that may be bound to a PostgreSQL text parameter.
Text = Annotated[str, AfterValidator(postgres_text)]
