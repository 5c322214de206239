"""Who is asking: the principal of a request and what it may see.

A request without a token is the anonymous public principal: aggregates only, people counts
below k suppressed. A bearer token stands for a user (``twin.access.tokens``): a role, and a
scope of admin areas (with everything under them) that limits every read and write; an empty
scope is the whole city. The scope reaches PostgreSQL as the setting ``twin.scope`` of the request's
transaction, where row-level security applies it (``twin/db/sql/access_v1.sql``). A device or
gateway is a user too, owning a set of datastreams: the only ones it may write
(``twin.sense.devices``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from twin.access.classification import ROLE_CLEARANCE, rank

ROLES = ("public", "viewer", "analyst", "operator", "admin")


@dataclass(frozen=True)
class Principal:
    name: str = "anonymous"
    role: str = "public"
    # Admin area ids the principal may touch (its scope areas and all under them); empty: all.
    scope: frozenset[int] = field(default_factory=frozenset)
    user_id: int | None = None  # app_user.id; None for the anonymous public
    scope_roots: tuple[int, ...] = ()  # the areas named in the user's scope
    # What a caller without a token may read (TWIN_PUBLIC_CLEARANCE); ignored for users.
    public_clearance: str = "general"
    # A device or gateway (``twin.sense_device``): the datastreams it owns, the only ones it
    # may write; None for a principal that is not a device.
    datastreams: frozenset[int] | None = None

    @property
    def clearance(self) -> str:
        """The most sensitive data class this principal may read (twin.access.classification)."""
        return ROLE_CLEARANCE.get(self.role, self.public_clearance)

    def cleared_for(self, level: str) -> bool:
        """Whether data labelled ``level`` (general, important, core) may be shown."""
        return rank(self.clearance) >= rank(level)

    @property
    def scoped(self) -> bool:
        """Whether reads and writes are limited to some admin areas."""
        return bool(self.scope)

    @property
    def scope_setting(self) -> str:
        """The value of ``twin.scope`` for this principal's transactions ('*': everything)."""
        return ",".join(str(a) for a in sorted(self.scope)) if self.scope else "*"

    def may_touch(self, area_id: int | None) -> bool:
        """Whether an area (None: the whole city) is within the scope."""
        return not self.scoped or (area_id is not None and area_id in self.scope)

    @property
    def rank(self) -> int:
        """Position of the role in ROLES (public 0 .. admin 4)."""
        return ROLES.index(self.role)

    def at_least(self, role: str) -> bool:
        """Whether this principal's role is ``role`` or above."""
        return self.rank >= ROLES.index(role)

    @property
    def can_see_people(self) -> bool:
        """Whether small people counts may be shown unsuppressed."""
        return self.role in ("analyst", "operator", "admin")

    @property
    def can_see_all_people(self) -> bool:
        """Whether small people counts of the whole city (totals, other areas) may be shown:
        outside its scope a scoped user is the public."""
        return self.can_see_people and not self.scoped

    @property
    def can_run_simulations(self) -> bool:
        return self.role in ("analyst", "operator", "admin")

    @property
    def can_operate(self) -> bool:
        """Dispatch tasks, change their state, acknowledge alerts."""
        return self.role in ("operator", "admin")

    @property
    def device(self) -> bool:
        """Whether this principal is a device or gateway (writes only its own datastreams)."""
        return self.datastreams is not None

    def owns_datastream(self, datastream: int) -> bool:
        """Whether a device may write ``datastream`` (False for every non-device)."""
        return self.datastreams is not None and datastream in self.datastreams

    @property
    def anonymous(self) -> bool:
        return self.user_id is None

    def may_run_simulations(self, open_to_anonymous: bool) -> bool:
        """Analysts and above; callers without a token too where the setting opens it (demo).

        A user with a token always gets exactly its role's rights."""
        return self.can_run_simulations or (self.anonymous and open_to_anonymous)

    def may_operate(self, open_to_anonymous: bool) -> bool:
        """Operators and admins; callers without a token too where the setting opens it."""
        return self.can_operate or (self.anonymous and open_to_anonymous)


PUBLIC = Principal()

#: Switches a transaction to the API's role with a caller's scope, name and client address
#: (``set_config(..., true)``: SET LOCAL semantics, gone at commit). Row-level security then
#: holds whatever runs in the transaction; audit rows take the client from ``twin.client``.
CALLER_SQL = (
    "SELECT set_config('role', %(role)s, true), set_config('twin.scope', %(scope)s, true),"
    " set_config('twin.actor', %(actor)s, true), set_config('twin.client', %(client)s, true)"
)


def caller_params(who: Principal, role: str, client: str | None = None) -> dict[str, Any]:
    """The parameters of :data:`CALLER_SQL` for ``who`` (``client``: an IP address or None)."""
    return {"role": role, "scope": who.scope_setting, "actor": who.name, "client": client or ""}


def act_as(conn: psycopg.Connection, who: Principal, role: str, client: str | None = None) -> None:
    """Run the rest of ``conn``'s current transaction as ``who`` (work done on a caller's
    behalf outside the request's own connection: alert evaluations, follow-up refreshes)."""
    conn.execute(CALLER_SQL, caller_params(who, role, client))
