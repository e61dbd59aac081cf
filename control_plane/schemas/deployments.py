"""Deployments: a flow made runnable by the control plane — where its code is, how to run it, and when.

A deployment is addressed ``FLOW/DEPLOYMENT`` (its name is unique per flow). It names the code (an ``entrypoint``
``path/to/file.py:function`` inside a content-addressed code bundle), default ``parameters`` and the flow's
``parameter_schema`` (JSON schema, checked when a run is created), the work queue and infrastructure an agent uses,
and zero or more schedules (:mod:`orch.control_plane.schemas.schedules`). ``POST /api/deployments/`` is an upsert by
``(flow_id, name)``, as in Prefect, so ``orch deploy`` can be run again and again.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import Field, field_validator

from orch.control_plane.schemas.base import JSONDict, Name, ObjectBase, OrchModel, ResponseModel, Tags, UtcDateTime
from orch.control_plane.schemas.filters import MAX_LIMIT, FlowFilter, IdFilter, NameFilter, TagsFilter
from orch.control_plane.schemas.flow_runs import RunPolicy
from orch.control_plane.schemas.schedules import DeploymentSchedule, DeploymentScheduleCreate
from orch.control_plane.schemas.states import StateCreate

__all__ = [
    "CodeBundle",
    "Deployment",
    "DeploymentCreate",
    "DeploymentFilter",
    "DeploymentFlowRunCreate",
    "DeploymentUpdate",
    "InfraType",
    "UpcomingRun",
]

InfraType = Literal["process", "docker", "ecs"]
# "flows/etl.py:main" or "pkg.module:main": a file (or module) and the name of the flow object in it.
ENTRYPOINT_PATTERN = r"^[^:\s][^:]*:[A-Za-z_][A-Za-z0-9_]*$"
MAX_LATENESS_LIMIT = 86_400 * 366


class CodeBundle(OrchModel):
    """Where a deployment's code is: a zip named by the sha256 of its content, in a Storage (folder or S3)."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    storage: str = Field(min_length=1, max_length=1000, description="file:///folder or s3://bucket/prefix")
    key: str = Field(min_length=1, max_length=1000, description="The object's key inside the storage.")
    size: int | None = Field(default=None, ge=0)


def _seconds(value: Any) -> Any:
    return value.total_seconds() if isinstance(value, dt.timedelta) else value


class _DeploymentFields(OrchModel):
    description: str | None = Field(default=None, max_length=10_000)
    version: str | None = Field(default=None, max_length=200)
    tags: Tags | None = None
    entrypoint: str | None = Field(default=None, max_length=1000, pattern=ENTRYPOINT_PATTERN)
    path: str | None = Field(default=None, max_length=1000)
    code_bundle: CodeBundle | None = None
    parameters: JSONDict | None = None
    parameter_schema: JSONDict | None = None
    enforce_parameter_schema: bool | None = None
    work_queue_name: Name | None = None
    infra_type: InfraType | None = None
    infra_overrides: JSONDict | None = None
    paused: bool | None = None
    max_lateness: float | None = Field(
        default=None, ge=0, le=MAX_LATENESS_LIMIT, description="Seconds after which a late run is skipped."
    )
    retries: int | None = Field(default=None, ge=0, le=1000)
    retry_delay: float | None = Field(default=None, ge=0, le=86_400 * 7)

    @field_validator("max_lateness", "retry_delay", mode="before")
    @classmethod
    def _timedelta_to_seconds(cls, value: Any) -> Any:
        return _seconds(value)


class DeploymentCreate(_DeploymentFields):
    """``POST /api/deployments/``: create, or update the deployment with the same flow and name.

    ``schedules`` given (even empty) replaces the deployment's schedules; schedules equal to existing ones keep
    their id (and their EventBridge mirror), so re-deploying an unchanged project changes nothing.
    """

    flow_id: uuid.UUID
    name: Name
    schedules: list[DeploymentScheduleCreate] | None = Field(default=None, max_length=100)


class DeploymentUpdate(_DeploymentFields):
    """``PATCH /api/deployments/{id}``: the fields given change; the others stay."""

    schedules: list[DeploymentScheduleCreate] | None = Field(default=None, max_length=100)


class Deployment(ObjectBase):
    flow_id: uuid.UUID
    flow_name: str | None = None
    name: str
    description: str | None = None
    version: str | None = None
    tags: list[str] = Field(default_factory=list)
    entrypoint: str | None = None
    path: str | None = None
    code_bundle: CodeBundle | None = None
    parameters: JSONDict = Field(default_factory=dict)
    parameter_schema: JSONDict = Field(default_factory=dict)
    enforce_parameter_schema: bool = True
    work_queue_name: str | None = None
    infra_type: str = "process"
    infra_overrides: JSONDict = Field(default_factory=dict)
    paused: bool = False
    max_lateness: float | None = None
    retries: int | None = None
    retry_delay: float | None = None
    schedules: list[DeploymentSchedule] = Field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


class DeploymentFilterFields(OrchModel):
    id: IdFilter | None = None
    name: NameFilter | None = None
    tags: TagsFilter | None = None
    work_queue_name: NameFilter | None = None
    paused: bool | None = None


class DeploymentFilter(OrchModel):
    """``POST /api/deployments/filter``: deployments matching all the given conditions, by flow and name."""

    deployments: DeploymentFilterFields | None = None
    flows: FlowFilter | None = None
    limit: int = Field(default=200, ge=1, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class DeploymentFlowRunCreate(OrchModel):
    """``POST /api/deployments/{id}/create_flow_run``: a run of the deployment, Scheduled unless ``state`` says.

    ``parameters`` are merged over the deployment's defaults and checked against its parameter schema.
    """

    name: str | None = Field(default=None, min_length=1, max_length=200)
    parameters: JSONDict = Field(default_factory=dict)
    tags: Tags | None = None
    scheduled_time: UtcDateTime | None = None
    work_queue_name: Name | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=500)
    state: StateCreate | None = None
    empirical_policy: RunPolicy | None = None


class UpcomingRun(ResponseModel):
    """One of a deployment's next scheduled times (from its active schedules)."""

    scheduled_time: UtcDateTime
    schedule_id: uuid.UUID
