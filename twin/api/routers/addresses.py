"""``/api/addresses``: search the standard address base."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from twin.api.deps import Conn
from twin.api.errors import InvalidParameterError
from twin.api.params import Text
from twin.api.schemas.addresses import AddressList
from twin.city.cellcard import find_addresses

router = APIRouter(prefix="/api/addresses", tags=["addresses"])


@router.get("", response_model=AddressList, summary="Find addresses")
async def search(
    conn: Conn,
    q: Annotated[Text, Query(description="address text in any common form", max_length=200)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Addresses whose normal form matches ``q`` (full-width, spacing, 號/号, Chinese numerals and
    'No.' prefixes do not matter), with their building and cell."""
    if not q.strip():
        raise InvalidParameterError("q", "must not be empty")
    rows = await find_addresses(conn, q, limit=limit)
    return {"q": q, "count": len(rows), "addresses": rows}
