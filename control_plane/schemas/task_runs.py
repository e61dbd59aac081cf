"""Task runs: client-orchestrated. The SDK decides their states and records them in batches.

The batch (``POST /api/task_runs/batch``) is the hot path: every task the SDK runs goes through it. Its entries are
typed dicts (``TaskRunRecord``, ``RecordedState``) validated by pydantic like any model (same constraints, unknown
fields refused), but without building a model object per task run and per state, which cost more than storing them.
``RecordedState`` has the fields and limits of ``StateCreate`` (a test pins that the two agree).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, TypeAdapter, WithJsonSchema, with_config

# pydantic needs typing_extensions' TypedDict before Python 3.12.
from typing_extensions import TypedDict

from orch.control_plane.schemas.base import ObjectBase, OrchModel, Tags, UtcDateTime
from orch.control_plane.schemas.states import State, StateCreate, StateDetails, StateType


class TaskRunCreate(OrchModel):
    """``POST /api/task_runs/``: one task run, optionally with its first state."""

    id: uuid.UUID | None = None
    flow_run_id: uuid.UUID | None = None
    task_key: str = Field(min_length=1, max_length=500)
    dynamic_key: str = Field(default="0", max_length=200)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    tags: Tags = Field(default_factory=list)
    cache_key: str | None = Field(default=None, max_length=2000)
    cache_expiration: UtcDateTime | None = None
    task_inputs: dict[str, Any] = Field(default_factory=dict)
    state: StateCreate | None = None


# A recorded state's type: one of ``StateType``'s values (a test pins them equal), kept as its plain string. A dict
# holding an enum member is a container the garbage collector tracks; with plain strings it is not, and a batch's
# thousands of states then cost the collector nothing while the batch is processed. A ``Literal`` is checked
# inside pydantic-core; an enum with ``use_enum_values`` would read each member's ``.value``, a Python property.
StateTypeValue = Literal[
    "SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED", "PAUSED", "CANCELLING"
]
_TIMESTAMP_SCHEMA = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}], "title": "Timestamp"}


@with_config(ConfigDict(extra="forbid"))
class RecordedState(TypedDict):
    """A state of a ``TaskRunRecord`` (the fields of ``StateCreate``; the server fills in a missing timestamp).
    ``type`` holds the ``StateType``'s value (``StateType`` is a ``str`` enum: members compare equal to it)."""

    type: StateTypeValue
    name: NotRequired[Annotated[str | None, Field(max_length=100)]]
    message: NotRequired[Annotated[str | None, Field(max_length=20_000)]]
    # ISO 8601 text (or a datetime, from Python callers): the model parses it when it reads it, and refuses what is
    # not a date and time with a 422 (naive means UTC, as everywhere in the API). See ``models.task_runs``.
    # Left to right: a string is taken as it is at the first try; the default ("smart") union would also try the
    # datetime on every string, which made this field half the cost of validating a state.
    timestamp: NotRequired[
        Annotated[str | dt.datetime | None, Field(union_mode="left_to_right"), WithJsonSchema(_TIMESTAMP_SCHEMA)]
    ]
    state_details: NotRequired[StateDetails]
    data: NotRequired[Any]


@with_config(ConfigDict(extra="forbid"))
class TaskRunRecord(TypedDict):
    """One entry of ``POST /api/task_runs/batch``: a task run and the states it went through since the last batch.

    Records are upserts keyed by ``id``: a long task appears first with ``Pending``/``Running`` and later again with
    its final state. The server checks each new state against the task-run orchestration policy in order.

    ``state_offset`` is the position of the record's first state in the run's history as the client counts it (the
    number of states it recorded for the run before). States the server already holds at those positions are
    skipped, so a batch sent twice (a retry after a lost answer) is recorded once. Without it, states are appended.
    """

    id: uuid.UUID
    flow_run_id: NotRequired[uuid.UUID | None]
    task_key: Annotated[str, Field(min_length=1, max_length=500)]
    dynamic_key: NotRequired[Annotated[str, Field(max_length=200)]]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    tags: NotRequired[Tags]
    cache_key: NotRequired[Annotated[str | None, Field(max_length=2000)]]
    cache_expiration: NotRequired[UtcDateTime | None]
    task_inputs: NotRequired[dict[str, Any]]
    run_count: NotRequired[Annotated[int, Field(ge=0)]]
    state_offset: NotRequired[Annotated[int, Field(ge=0)] | None]
    states: NotRequired[Annotated[list[RecordedState], Field(max_length=1000)]]


@with_config(ConfigDict(extra="forbid"))
class TaskRunBatch(TypedDict):
    """``POST /api/task_runs/batch``: up to 10,000 task-run records."""

    task_runs: Annotated[list[TaskRunRecord], Field(max_length=10_000)]


# Validates a raw request body in one pass (JSON parsing included).
TASK_RUN_BATCH: TypeAdapter[TaskRunBatch] = TypeAdapter(TaskRunBatch)


def recorded_state(state: StateCreate) -> RecordedState:
    """A validated ``StateCreate`` as a batch entry's state (single create and ``set_state`` share the batch path)."""
    return {
        "type": state.type.value,
        "name": state.name,
        "message": state.message,
        "timestamp": state.timestamp,
        "state_details": state.state_details,
        "data": state.data,
    }


class TaskRunBatchResult(OrchModel):
    """How many of the batch's states are recorded (states already held count too) and which were refused."""

    accepted: int
    rejected: list[dict[str, Any]] = Field(default_factory=list)


class TaskRun(ObjectBase):
    flow_run_id: uuid.UUID | None = None
    task_key: str
    dynamic_key: str
    name: str
    tags: list[str] = Field(default_factory=list)
    cache_key: str | None = None
    cache_expiration: UtcDateTime | None = None
    task_inputs: dict[str, Any] = Field(default_factory=dict)
    state_type: StateType | None = None
    state_name: str | None = None
    state_version: int = 0
    state: State | None = None
    run_count: int = 0
    expected_start_time: UtcDateTime | None = None
    start_time: UtcDateTime | None = None
    end_time: UtcDateTime | None = None
    total_run_time: float = 0.0
