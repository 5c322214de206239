"""The task state machine: legal transitions, due defaults, lateness. Pure: no database.

:data:`TRANSITIONS` is the whole policy; :func:`check_transition` enforces it and
:func:`is_overdue` says when a task is late. :mod:`twin.tasks.service` applies them to the
stored tasks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, get_args

from twin.errors import ConflictError, InvalidParameterError

TaskState = Literal["open", "accepted", "in_progress", "done", "closed", "rejected", "reassigned"]
STATES: tuple[str, ...] = get_args(TaskState)

#: Legal next states of each state. ``reassigned`` may follow itself: a task can be passed on
#: again (or escalated once more) before anyone accepts it. ``done -> in_progress`` sends work
#: back for rework; ``closed`` is final.
TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"accepted", "rejected", "reassigned"}),
    "reassigned": frozenset({"accepted", "rejected", "reassigned"}),
    "accepted": frozenset({"in_progress", "reassigned"}),
    "in_progress": frozenset({"done", "reassigned"}),
    "done": frozenset({"closed", "in_progress"}),
    "rejected": frozenset({"reassigned", "closed"}),
    "closed": frozenset(),
}

#: States in which a task can no longer be late: the work is finished.
FINISHED: frozenset[str] = frozenset({"done", "closed"})

#: Default time to the due time by priority (1 urgent .. 4 routine).
DUE_BY_PRIORITY: dict[int, timedelta] = {
    1: timedelta(hours=2),
    2: timedelta(hours=24),
    3: timedelta(hours=72),
    4: timedelta(days=7),
}
PRIORITIES = tuple(DUE_BY_PRIORITY)
MAX_TITLE = 200
MAX_TEXT = 5000


class TaskTransitionError(ConflictError):
    """A state change the state machine does not allow (HTTP 409)."""

    def __init__(self, from_state: str, to_state: str) -> None:
        legal = sorted(TRANSITIONS.get(from_state, frozenset()))
        nxt = ", ".join(legal) if legal else "none (it is final)"
        super().__init__(
            f"a task cannot go from {from_state!r} to {to_state!r}; from {from_state!r} it may "
            f"go to: {nxt}"
        )
        self.from_state = from_state
        self.to_state = to_state
        self.legal = legal


# ------------------------------------------------------------------------- state machine
def check_state(state: str, parameter: str = "state") -> str:
    """Return ``state`` if it is a task state, else raise :class:`InvalidParameterError`."""
    if state not in STATES:
        raise InvalidParameterError(parameter, f"{state!r} is not a task state; one of "
                                    f"{', '.join(STATES)}")  # fmt: skip
    return state


def check_transition(from_state: str, to_state: str) -> None:
    """Raise unless a task may go from ``from_state`` to ``to_state``.

    Parameters
    ----------
    from_state, to_state
        Task states (see :data:`STATES`).

    Raises
    ------
    InvalidParameterError
        when either is not a task state (a malformed request, not a conflict).
    TaskTransitionError
        when the move is not in :data:`TRANSITIONS`; the message names both states and the
        legal next states.
    """
    check_state(from_state, "from_state")
    check_state(to_state)
    if to_state not in TRANSITIONS[from_state]:
        raise TaskTransitionError(from_state, to_state)


def default_due(priority: int, now: datetime) -> datetime:
    """The due time of a task of ``priority`` (1..4, else InvalidParameterError) sent at ``now``."""
    return now + due_delta(priority)


def due_delta(priority: int) -> timedelta:
    """Time allowed for a task of ``priority`` (1 urgent: 2 h, 2: 24 h, 3: 72 h, 4: 7 days)."""
    if isinstance(priority, bool) or priority not in DUE_BY_PRIORITY:
        raise InvalidParameterError("priority", f"must be one of {PRIORITIES}, not {priority!r}")
    return DUE_BY_PRIORITY[priority]


def is_overdue(state: str, due_at: datetime | None, now: datetime) -> bool:
    """Whether a task is late: its due time has passed and its work is not finished.

    A task without a due time is never late; ``done`` and ``closed`` tasks are never late
    (the work was delivered, whatever the review says later).
    """
    return due_at is not None and due_at < now and state not in FINISHED
