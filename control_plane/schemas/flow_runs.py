"""Flow runs: one execution of a flow, orchestrated by the server one transition at a time."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field

from orch.control_plane.schemas.base import JSONDict, ObjectBase, OrchModel, ResponseModel, Tags, UtcDateTime
from orch.control_plane.schemas.states import State, StateCreate, StateType


class RunPolicy(OrchModel):
    """How the server retries a failed flow run (set by the SDK from ``@flow(retries=...)``)."""

    retries: int = Field(default=0, ge=0, le=1000)
    retry_delay: float = Field(default=0, ge=0, le=86_400 * 7)


class FlowRunCreate(OrchModel):
    flow_id: uuid.UUID
    name: str | None = Field(default=None, min_length=1, max_length=200)
    parameters: JSONDict = Field(default_factory=dict)
    tags: Tags = Field(default_factory=list)
    state: StateCreate | None = None
    deployment_id: uuid.UUID | None = None
    work_queue_name: str | None = Field(default=None, min_length=1, max_length=200)
    parent_task_run_id: uuid.UUID | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=500)
    empirical_policy: RunPolicy = Field(default_factory=RunPolicy)
    # Client-chosen id (lets the SDK create runs without waiting for the answer). Unique, like any id.
    id: uuid.UUID | None = None


class FlowRunUpdate(OrchModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    parameters: JSONDict | None = None
    tags: Tags | None = None
    empirical_policy: RunPolicy | None = None
    infrastructure_pid: str | None = Field(default=None, max_length=500)


class FlowRun(ObjectBase):
    flow_id: uuid.UUID
    name: str
    parameters: JSONDict = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    deployment_id: uuid.UUID | None = None
    work_queue_name: str | None = None
    parent_task_run_id: uuid.UUID | None = None
    idempotency_key: str | None = None
    empirical_policy: RunPolicy = Field(default_factory=RunPolicy)
    state_type: StateType | None = None
    state_name: str | None = None
    state_version: int = 0
    state: State | None = None
    run_count: int = 0
    expected_start_time: UtcDateTime | None = None
    start_time: UtcDateTime | None = None
    end_time: UtcDateTime | None = None
    total_run_time: float = 0.0
    heartbeat_time: UtcDateTime | None = None
    infrastructure_pid: str | None = None


class FlowRunPage(ResponseModel):
    """One page of a keyset-paginated list: pass ``next_cursor`` back as ``cursor`` for the next page."""

    results: list[FlowRun]
    next_cursor: str | None = None


class HeartbeatResponse(ResponseModel):
    """What a heartbeat answers: the run's state type, so an engine learns of a cancellation."""

    state_type: StateType | None
    state_name: str | None


def parameters_summary(parameters: dict[str, Any], limit: int = 200) -> str:
    """A one-line rendering of parameters for tables."""
    text = ", ".join(f"{k}={v!r}" for k, v in parameters.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"
