"""Hypothesis strategies shared by the property and fuzz tests.

- ``proposals()``: one proposed flow-run transition as a client could send it (type, a well-known or made-up name,
  ``force``, a scheduled time relative to "now", how far the clock moves before it is sent, ``retriable``).
- ``run_policies()``: the retries policy a run is created with.
- ``junk_json()``: JSON values a hostile or buggy client might post (NUL bytes, huge numbers, deep nesting,
  SQL-injection and path-traversal strings, wrong types), for the "no 500 for anything a client can send" test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from hypothesis import strategies as st

from orch.control_plane.schemas.states import StateType

# The names a client may give each state type (Prefect's well-known ones plus a custom one).
NAMES: dict[StateType, list[str | None]] = {
    StateType.SCHEDULED: [None, "Scheduled", "Late", "AwaitingRetry", "Rescheduled"],
    StateType.PENDING: [None, "Pending"],
    StateType.RUNNING: [None, "Running", "Retrying"],
    StateType.COMPLETED: [None, "Completed", "Cached"],
    StateType.FAILED: [None, "Failed", "TimedOut"],
    StateType.CANCELLED: [None, "Cancelled", "Skipped"],
    StateType.CRASHED: [None, "Crashed"],
    StateType.PAUSED: [None, "Paused", "Suspended"],
    StateType.CANCELLING: [None, "Cancelling"],
}


@dataclasses.dataclass(frozen=True)
class Proposal:
    """One proposed transition, relative to the test's clock."""

    type: StateType
    name: str | None
    force: bool
    # Seconds the clock moves forward before the proposal (strictly positive: history order is by timestamp).
    advance: float
    # For SCHEDULED proposals: scheduled time relative to the (advanced) clock, or None for "now".
    scheduled_in: float | None
    retriable: bool | None

    def state_create(self, now: dt.datetime) -> Any:
        from orch.control_plane.schemas.states import StateCreate, StateDetails

        details = StateDetails(retriable=self.retriable)
        if self.scheduled_in is not None:
            details.scheduled_time = now + dt.timedelta(seconds=self.scheduled_in)
        return StateCreate(type=self.type, name=self.name, state_details=details)


@st.composite
def proposals(draw: st.DrawFn, force_probability: float = 0.1) -> Proposal:
    type_ = draw(st.sampled_from(list(StateType)))
    name = draw(st.sampled_from(NAMES[type_]))
    force = draw(st.floats(0, 1)) < force_probability
    advance = draw(st.sampled_from([0.001, 0.5, 2.0, 20.0, 120.0]))
    scheduled_in = None
    if type_ is StateType.SCHEDULED:
        scheduled_in = draw(st.sampled_from([None, -60.0, -1.0, 0.0, 0.5, 30.0, 600.0]))
    retriable = draw(st.sampled_from([None, None, True, False])) if type_ is StateType.FAILED else None
    return Proposal(type_, name, force, advance, scheduled_in, retriable)


@st.composite
def run_policies(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "retries": draw(st.integers(0, 3)),
        "retry_delay": draw(st.sampled_from([0.0, 0.0, 1.0, 30.0])),
    }


# -- hostile input -------------------------------------------------------------------------------------------------

NASTY_STRINGS = [
    "",
    "\x00",
    "a\x00b",
    "\u0000\u0001\u001f\u007f",
    "'; DROP TABLE flow_runs; --",
    '" OR 1=1 --',
    "%",
    "_%_",
    "\\",
    "../../../../etc/passwd",
    "..%2f..%2f",
    "/api/../../",
    "\ud7ff\ue000\uffff",
    "😀" * 50,
    "x" * 10_001,
    "NaN",
    "Infinity",
    "9" * 400,
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "2026-13-45T99:99:99",
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+05:00",
    "1970-01-01T00:00:00Z",
    "SCHEDULED",
    "LATE",
    "EXPECTED_START_TIME_DESC",
]

NASTY_NUMBERS = [0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**40, 1e308, -1e308, 1e-320, 0.5, 1000, 10_001]


def nasty_strings() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=30))


def junk_json(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value, biased towards the hostile ones above."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from(NASTY_NUMBERS),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        nasty_strings(),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.one_of(nasty_strings(), st.sampled_from(FIELD_NAMES)), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


# Field names of our request bodies: junk keyed by them gets past "extra field" checks and reaches validators.
FIELD_NAMES = [
    "name",
    "tags",
    "flow_id",
    "state",
    "type",
    "timestamp",
    "state_details",
    "scheduled_time",
    "parameters",
    "idempotency_key",
    "empirical_policy",
    "retries",
    "retry_delay",
    "force",
    "flow_runs",
    "flows",
    "task_runs",
    "logs",
    "level",
    "message",
    "limit",
    "offset",
    "cursor",
    "sort",
    "any_",
    "all_",
    "is_null_",
    "after_",
    "before_",
    "ge_",
    "le_",
    "id",
    "task_key",
    "flow_run_id",
    "deployment_id",
    "work_queue_name",
    "parent_task_run_id",
    "expected_start_time",
    "data",
]


@st.composite
def body_mutations(draw: st.DrawFn, valid: dict[str, Any]) -> Any:
    """A valid body with one field replaced by junk (or dropped, or the whole body replaced)."""
    choice = draw(st.integers(0, 3))
    if choice == 0 or not valid:
        return draw(junk_json())
    key = draw(st.sampled_from(sorted(valid)))
    mutated = dict(valid)
    if choice == 1:
        mutated.pop(key)
    else:
        mutated[key] = draw(junk_json(max_leaves=6))
    return mutated
