"""The task-run batch's typed dicts and the model's shortcuts, pinned to the models they stand in for.

``RecordedState`` must accept and refuse what ``StateCreate`` does; ``TaskRunRecord`` must carry what
``TaskRunCreate`` does; the State that ``record_batch`` builds without validation must be the State validation
would build (it relies on how pydantic stores a model's fields).
"""

from __future__ import annotations

import datetime as dt
import typing
import uuid
from typing import Any

import pydantic
import pytest

from orch.control_plane.models import task_runs as model
from orch.control_plane.orchestration import RunView
from orch.control_plane.orchestration.policies import CORE_TASK_POLICY
from orch.control_plane.schemas.states import State, StateCreate, StateDetails, StateType
from orch.control_plane.schemas.task_runs import (
    TASK_RUN_BATCH,
    RecordedState,
    StateTypeValue,
    TaskRunCreate,
    TaskRunRecord,
)
from orch.exceptions import InvalidInput

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 5, 1, 8, 30, tzinfo=dt.UTC)
# A server clock later than every time the cases send (the model never keeps a time later than its own clock).
LATER = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def test_recorded_state_has_the_fields_of_state_create() -> None:
    assert set(RecordedState.__annotations__) == set(StateCreate.model_fields)


def test_recorded_state_types_are_the_state_types() -> None:
    assert set(typing.get_args(StateTypeValue)) == {member.value for member in StateType}


def test_task_run_record_carries_what_task_run_create_does() -> None:
    assert set(TaskRunCreate.model_fields) - {"state"} <= set(TaskRunRecord.__annotations__)
    assert set(TaskRunRecord.__annotations__) - set(TaskRunCreate.model_fields) == {
        "run_count",
        "state_offset",
        "states",
    }


STATES: list[Any] = [
    {"type": "RUNNING"},
    {"type": "SCHEDULED", "name": "AwaitingRetry", "state_details": {"scheduled_time": "2026-05-01T09:00:00"}},
    {"type": "COMPLETED", "message": "ok", "timestamp": "2026-05-01T08:00:00+02:00", "data": {"storage_key": "k"}},
    {"type": "NOPE"},
    {"type": "RUNNING", "name": "x" * 101},
    {"type": "RUNNING", "message": "m" * 20_001},
    {"type": "RUNNING", "timestamp": "yesterday"},
    {"type": "RUNNING", "timestamp": "2026-05-01T08:00:00"},
    {"type": "RUNNING", "timestamp": "2026-05-01T06:00:00Z"},
    {"type": "RUNNING", "timestamp": "2026-05-01T06:00:00.000001+00:00"},
    {"type": "RUNNING", "timestamp": 1777622400},
    {"type": "RUNNING", "timestamp": "0001-01-01T00:30:00+01:00"},
    {"type": "RUNNING", "state_details": {"unknown": 1}},
    {"type": "RUNNING", "extra": 1},
    {"name": "no type"},
]


def _record_first_state(batch: Any) -> None:
    [record] = TASK_RUN_BATCH.validate_python(batch)["task_runs"]
    model._orchestrate(RunView(state=None), record["states"][0], LATER, CORE_TASK_POLICY)


@pytest.mark.parametrize("body", STATES)
def test_recorded_states_are_validated_like_state_create(body: dict[str, Any]) -> None:
    batch = {"task_runs": [{"id": str(uuid.uuid4()), "task_key": "t", "name": "t", "states": [body]}]}
    try:
        expected: StateCreate | None = StateCreate.model_validate(body)
    except pydantic.ValidationError:
        expected = None
    if expected is None:
        # Refused by the validator, or (a state's time, parsed where the model reads it) by the model: a 422 both ways.
        with pytest.raises((pydantic.ValidationError, InvalidInput)):
            _record_first_state(batch)
        return
    [record] = TASK_RUN_BATCH.validate_python(batch)["task_runs"]
    [recorded] = record["states"]
    # The type is kept as the StateType's plain value (no enum member: see RecordedState).
    assert recorded["type"] == expected.type and type(recorded["type"]) is str
    assert recorded.get("name") == expected.name
    assert recorded.get("message") == expected.message
    for batch_state in (False, True):
        proposed = model._orchestrate(
            RunView(state=None), recorded, LATER, CORE_TASK_POLICY, batch=batch_state
        ).proposed
        assert proposed.timestamp == (expected.timestamp or LATER)
        assert proposed.timestamp.tzinfo is dt.UTC
    assert recorded.get("state_details", StateDetails()) == expected.state_details
    assert recorded.get("data") == expected.data


@pytest.mark.parametrize(
    "proposed",
    [
        {"type": StateType.RUNNING},
        {"type": StateType.COMPLETED, "name": "Cached", "message": "m", "data": [1], "timestamp": NOW},
        {"type": StateType.SCHEDULED, "state_details": StateDetails(scheduled_time=NOW)},
        {"type": StateType.SCHEDULED},
    ],
)
def test_the_unvalidated_state_is_the_validated_one(proposed: RecordedState) -> None:
    ctx = model._orchestrate(RunView(state=None), proposed, NOW, CORE_TASK_POLICY)
    built = ctx.proposed
    validated = State.model_validate(built.model_dump())
    assert built == validated
    assert built.model_dump() == validated.model_dump()
    assert built.model_fields_set == validated.model_fields_set
    assert built.state_details is not model._NO_DETAILS or proposed["type"] is not StateType.SCHEDULED
    # The states the batch path builds can be changed like any model (the bookkeeping sets timestamps).
    built.message = "changed"
    assert built.model_dump()["message"] == "changed"


def test_states_without_details_do_not_share_a_mutable_scheduled_time() -> None:
    first = model._orchestrate(RunView(state=None), {"type": StateType.SCHEDULED}, NOW, CORE_TASK_POLICY)
    later = NOW + dt.timedelta(hours=1)
    second = model._orchestrate(RunView(state=None), {"type": StateType.SCHEDULED}, later, CORE_TASK_POLICY)
    assert first.proposed.state_details.scheduled_time == NOW
    assert second.proposed.state_details.scheduled_time == later
    assert model._NO_DETAILS.scheduled_time is None  # the shared empty details were not filled in


def test_the_batch_state_is_orchestrated_like_the_model_state() -> None:
    """The batch proposes ``_BatchState`` objects (no pydantic machinery). Random sequences of proposals, with
    random times, go through the task-run policy both ways: same answers, same bookkeeping, same stored state."""
    import random

    assert set(model._BatchState.__slots__) - {"text", "text_of"} == set(State.model_fields)
    rng = random.Random(9)
    types = list(StateType)
    for _ in range(300):
        views = (RunView(state=None), RunView(state=None))
        for _ in range(rng.randrange(1, 8)):
            proposed: RecordedState = {"type": rng.choice(types).value}  # type: ignore[typeddict-item]
            if rng.random() < 0.8:
                when = NOW + dt.timedelta(seconds=rng.uniform(-600, 600))
                # As the SDK sends it (text), in other ISO forms, or as a datetime (Python callers).
                form = rng.choice(["microseconds", "seconds", "auto", None])
                proposed["timestamp"] = when.isoformat(timespec=form) if form else when
            if rng.random() < 0.2:
                proposed["message"] = "m"
            if rng.random() < 0.2:
                proposed["name"] = "Custom"
            answers = [
                model._orchestrate(views[0], proposed, NOW, CORE_TASK_POLICY),
                model._orchestrate(views[1], proposed, NOW, CORE_TASK_POLICY, batch=True),
            ]
            model_ctx, batch_ctx = answers
            assert (model_ctx.status, model_ctx.reason, model_ctx.writes) == (
                batch_ctx.status,
                batch_ctx.reason,
                batch_ctx.writes,
            )
            assert model._entry(model_ctx.proposed) == model._entry(batch_ctx.proposed)
            assert model._run_values(views[0]) == model._run_values(views[1])


def test_columns_a_new_row_may_leave_out_are_null_without_a_default() -> None:
    """``_new_row`` omits these when they are unset: the database must then store exactly what ``None`` stores."""
    from orch.control_plane.db import orm

    table = orm.TaskRun.__table__
    for name in (*model._OPTIONAL_COLUMNS, "state_message"):
        column = table.c[name]  # type: ignore[attr-defined]
        assert column.nullable and column.default is None and column.server_default is None, name
