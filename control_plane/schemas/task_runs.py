"""Task runs: client-orchestrated. The SDK decides their states and records them in batches."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field

from orch.control_plane.schemas.base import ObjectBase, OrchModel, Tags, UtcDateTime
from orch.control_plane.schemas.states import State, StateCreate, StateType


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


class TaskRunRecord(OrchModel):
    """One entry of ``POST /api/task_runs/batch``: a task run and the states it went through since the last batch.

    Records are upserts keyed by ``id``: a long task appears first with ``Pending``/``Running`` and later again with
    its final state. The server checks each new state against the task-run orchestration policy in order.
    """

    id: uuid.UUID
    flow_run_id: uuid.UUID | None = None
    task_key: str = Field(min_length=1, max_length=500)
    dynamic_key: str = Field(default="0", max_length=200)
    name: str = Field(min_length=1, max_length=200)
    tags: Tags = Field(default_factory=list)
    cache_key: str | None = Field(default=None, max_length=2000)
    cache_expiration: UtcDateTime | None = None
    task_inputs: dict[str, Any] = Field(default_factory=dict)
    run_count: int = Field(default=0, ge=0)
    states: list[StateCreate] = Field(default_factory=list, max_length=1000)


class TaskRunBatch(OrchModel):
    task_runs: list[TaskRunRecord] = Field(max_length=10_000)


class TaskRunBatchResult(OrchModel):
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
