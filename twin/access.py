"""Who is asking: the principal of a request and what it may see.

Until users and tokens exist, every request is the anonymous public principal: aggregates only,
people counts below k suppressed. Roles and scopes plug in here (see DESIGN.md section 9).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("public", "viewer", "analyst", "operator", "admin")


@dataclass(frozen=True)
class Principal:
    name: str = "anonymous"
    role: str = "public"
    scope: frozenset[int] = field(default_factory=frozenset)  # admin area ids; empty = none
    user_id: int | None = None  # app_user.id once tokens exist

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
    def can_run_simulations(self) -> bool:
        return self.role in ("analyst", "operator", "admin")

    @property
    def can_operate(self) -> bool:
        """Dispatch tasks, change their state, acknowledge alerts."""
        return self.role in ("operator", "admin")


PUBLIC = Principal()
