"""Models shared by several routers."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AreaRef(BaseModel):
    """An admin area as responses show it."""

    id: int = Field(description="admin area id")
    code: str | None = Field(None, description="admin area code")
    name: str | None = Field(None, description="admin area name")
    level: str | None = Field(None, description="city, district, street, community or grid")


#: A number that is an integer or not as the value is (``float`` would turn ``3`` into ``3.0``).
Number = int | float
