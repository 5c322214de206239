"""The task state machine, due defaults and lateness: pure, no database."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from twin.api.errors import ConflictError, InvalidParameterError
from twin.cli.tasks import parse_duration
from twin.db.models.ops import TASK_STATES
from twin.tasks.states import (
    DUE_BY_PRIORITY,
    STATES,
    TRANSITIONS,
    TaskTransitionError,
    check_transition,
    default_due,
    due_delta,
    is_overdue,
)

# The documented table, written out again here so that a change to the code shows up as a
# failing test rather than silently redefining what is legal.
LEGAL = {
    ("open", "accepted"), ("open", "rejected"), ("open", "reassigned"),
    ("reassigned", "accepted"), ("reassigned", "rejected"), ("reassigned", "reassigned"),
    ("accepted", "in_progress"), ("accepted", "reassigned"),
    ("in_progress", "done"), ("in_progress", "reassigned"),
    ("done", "closed"), ("done", "in_progress"),
    ("rejected", "reassigned"), ("rejected", "closed"),
}  # fmt: skip
NOW = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


def test_states_match_the_schema() -> None:
    assert set(STATES) == set(TASK_STATES)
    assert set(TRANSITIONS) == set(STATES)
    assert {(a, b) for a, nxt in TRANSITIONS.items() for b in nxt} == LEGAL
    assert TRANSITIONS["closed"] == frozenset()


@pytest.mark.parametrize(("src", "dst"), sorted(LEGAL))
def test_every_legal_transition_is_accepted(src: str, dst: str) -> None:
    check_transition(src, dst)


ILLEGAL = sorted(set(itertools.product(STATES, STATES)) - LEGAL)


def test_the_illegal_pairs_are_all_the_others() -> None:
    assert len(ILLEGAL) == len(STATES) ** 2 - len(LEGAL) == 35


@pytest.mark.parametrize(("src", "dst"), ILLEGAL)
def test_every_illegal_transition_is_refused(src: str, dst: str) -> None:
    with pytest.raises(TaskTransitionError) as info:
        check_transition(src, dst)
    err = info.value
    assert isinstance(err, ConflictError)  # -> 409
    message = str(err)
    assert repr(src) in message and repr(dst) in message
    for legal in TRANSITIONS[src]:
        assert legal in message.split("may go to:")[1]
    assert err.legal == sorted(TRANSITIONS[src])
    if src == "closed":
        assert "final" in message


@pytest.mark.parametrize(("src", "dst"), [("open", "flying"), ("lost", "open"), ("", "done")])
def test_unknown_states_are_bad_parameters_not_conflicts(src: str, dst: str) -> None:
    with pytest.raises(InvalidParameterError):
        check_transition(src, dst)


def test_due_defaults_by_priority() -> None:
    expected = {1: timedelta(hours=2), 2: timedelta(hours=24), 3: timedelta(hours=72),
                4: timedelta(days=7)}  # fmt: skip
    assert expected == DUE_BY_PRIORITY
    for priority, delta in expected.items():
        assert due_delta(priority) == delta
        assert default_due(priority, NOW) == NOW + delta
    for bad in (0, 5, -1, True):
        with pytest.raises(InvalidParameterError, match="priority"):
            due_delta(bad)


@pytest.mark.parametrize("state", STATES)
def test_overdue_means_late_and_unfinished(state: str) -> None:
    past, future = NOW - timedelta(seconds=1), NOW + timedelta(hours=1)
    assert is_overdue(state, past, NOW) is (state not in ("done", "closed"))
    assert is_overdue(state, future, NOW) is False
    assert is_overdue(state, NOW, NOW) is False  # due exactly now is not late yet
    assert is_overdue(state, None, NOW) is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90m", timedelta(minutes=90)), ("24h", timedelta(hours=24)), ("2d", timedelta(days=2)),
     ("1w", timedelta(weeks=1)), ("30s", timedelta(seconds=30)), ("1.5H", timedelta(hours=1.5)),
     ("24", None), ("h", None), ("0h", None), ("-1h", None), ("2 days", None)],
)  # fmt: skip
def test_cli_durations(text: str, expected: timedelta | None) -> None:
    assert parse_duration(text) == expected
