"""Model of ``/api/addresses``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Address(BaseModel):
    id: int
    text: str = Field(description="the normalised full address")
    building_id: int | None = Field(description="the building the address is of")
    lon: float = Field(description="longitude (degrees)")
    lat: float = Field(description="latitude (degrees)")
    h3: str | None = Field(description="the cell holding the address (H3 hex)")


class AddressList(BaseModel):
    q: str = Field(description="the text searched for")
    count: int
    addresses: list[Address] = Field(description="exact matches first, then prefix, substring")
