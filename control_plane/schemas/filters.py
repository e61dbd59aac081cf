"""Filter bodies for the ``POST /api/<resource>/filter`` endpoints, shaped like Prefect's.

Example::

    {"flow_runs": {"state": {"type": {"any_": ["FAILED", "CRASHED"]}}, "tags": {"all_": ["etl"]}},
     "flows": {"name": {"any_": ["nightly"]}},
     "sort": "EXPECTED_START_TIME_DESC", "limit": 50, "cursor": null}

Lists use keyset pagination: each page answers a ``next_cursor``; passing it back as ``cursor`` continues after the
last row of the previous page, so pages stay fast and stable however deep they go. ``offset`` is accepted for
Prefect compatibility but is slow on deep pages.
"""

from __future__ import annotations

import enum
import uuid

from pydantic import Field

from orch.control_plane.schemas.base import OrchModel, UtcDateTime
from orch.control_plane.schemas.states import StateType

MAX_LIMIT = 1000


class IdFilter(OrchModel):
    any_: list[uuid.UUID] | None = Field(default=None, max_length=MAX_LIMIT)


class OptionalIdFilter(OrchModel):
    any_: list[uuid.UUID] | None = Field(default=None, max_length=MAX_LIMIT)
    is_null_: bool | None = None


class NameFilter(OrchModel):
    any_: list[str] | None = Field(default=None, max_length=MAX_LIMIT)
    like_: str | None = Field(default=None, max_length=200)


class StateTypeFilter(OrchModel):
    any_: list[StateType] | None = None
    not_any_: list[StateType] | None = None


class StateNameFilter(OrchModel):
    any_: list[str] | None = Field(default=None, max_length=50)


class StateFilter(OrchModel):
    type: StateTypeFilter | None = None
    name: StateNameFilter | None = None


class TagsFilter(OrchModel):
    all_: list[str] | None = Field(default=None, max_length=50)
    any_: list[str] | None = Field(default=None, max_length=50)


class TimeFilter(OrchModel):
    after_: UtcDateTime | None = None
    before_: UtcDateTime | None = None
    is_null_: bool | None = None


class FlowFilter(OrchModel):
    id: IdFilter | None = None
    name: NameFilter | None = None
    tags: TagsFilter | None = None


class FlowRunFilterFields(OrchModel):
    id: IdFilter | None = None
    name: NameFilter | None = None
    flow_id: IdFilter | None = None
    deployment_id: OptionalIdFilter | None = None
    work_queue_name: NameFilter | None = None
    parent_task_run_id: OptionalIdFilter | None = None
    state: StateFilter | None = None
    tags: TagsFilter | None = None
    expected_start_time: TimeFilter | None = None
    start_time: TimeFilter | None = None
    end_time: TimeFilter | None = None


class DeploymentFilterFields(OrchModel):
    id: IdFilter | None = None
    name: NameFilter | None = None


class FlowRunSort(enum.StrEnum):
    EXPECTED_START_TIME_DESC = "EXPECTED_START_TIME_DESC"
    EXPECTED_START_TIME_ASC = "EXPECTED_START_TIME_ASC"
    CREATED_DESC = "CREATED_DESC"
    CREATED_ASC = "CREATED_ASC"
    UPDATED_DESC = "UPDATED_DESC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"


class FlowRunFilter(OrchModel):
    flow_runs: FlowRunFilterFields | None = None
    flows: FlowFilter | None = None
    deployments: DeploymentFilterFields | None = None
    sort: FlowRunSort = FlowRunSort.EXPECTED_START_TIME_DESC
    limit: int = Field(default=200, ge=1, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=1_000_000)
    cursor: str | None = Field(default=None, max_length=1000)


class TaskRunFilterFields(OrchModel):
    id: IdFilter | None = None
    flow_run_id: OptionalIdFilter | None = None
    name: NameFilter | None = None
    state: StateFilter | None = None
    tags: TagsFilter | None = None


class TaskRunSort(enum.StrEnum):
    EXPECTED_START_TIME_ASC = "EXPECTED_START_TIME_ASC"
    EXPECTED_START_TIME_DESC = "EXPECTED_START_TIME_DESC"


class TaskRunFilter(OrchModel):
    task_runs: TaskRunFilterFields | None = None
    sort: TaskRunSort = TaskRunSort.EXPECTED_START_TIME_ASC
    limit: int = Field(default=200, ge=1, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=1_000_000)
    cursor: str | None = Field(default=None, max_length=1000)


class FlowFilterRequest(OrchModel):
    flows: FlowFilter | None = None
    limit: int = Field(default=200, ge=1, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class LogLevelFilter(OrchModel):
    ge_: int | None = Field(default=None, ge=0, le=100)
    le_: int | None = Field(default=None, ge=0, le=100)


class LogFilterFields(OrchModel):
    flow_run_id: IdFilter | None = None
    task_run_id: OptionalIdFilter | None = None
    level: LogLevelFilter | None = None
    timestamp: TimeFilter | None = None


class LogSort(enum.StrEnum):
    TIMESTAMP_ASC = "TIMESTAMP_ASC"
    TIMESTAMP_DESC = "TIMESTAMP_DESC"


class LogFilter(OrchModel):
    logs: LogFilterFields | None = None
    sort: LogSort = LogSort.TIMESTAMP_ASC
    limit: int = Field(default=200, ge=1, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=1_000_000)
    cursor: str | None = Field(default=None, max_length=1000)
