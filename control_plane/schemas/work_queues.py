"""Work queues (named lanes that agents take runs from) and the agents that poll them."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field, StringConstraints

from orch.control_plane.schemas.base import ObjectBase, OrchModel, ResponseModel, UtcDateTime
from orch.control_plane.schemas.flow_runs import FlowRun

# Work queue names become SQS queue names: letters, digits, '-', '_' and '.', at most 60 characters.
WorkQueueName = Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class WorkQueueCreate(OrchModel):
    name: WorkQueueName
    description: str | None = Field(default=None, max_length=5000)
    priority: int = Field(default=100, ge=1, le=10_000, description="Lower is served first by agents.")
    concurrency_limit: int | None = Field(default=None, ge=0, le=100_000)
    paused: bool = False


class WorkQueueUpdate(OrchModel):
    description: str | None = Field(default=None, max_length=5000)
    priority: int | None = Field(default=None, ge=1, le=10_000)
    concurrency_limit: int | None = Field(default=None, ge=0, le=100_000)
    paused: bool | None = None


class WorkQueue(ObjectBase):
    name: str
    description: str | None = None
    priority: int = 100
    concurrency_limit: int | None = None
    paused: bool = False
    last_polled: UtcDateTime | None = None
    sqs_queue_url: str | None = None
    sqs_dlq_url: str | None = None


class WorkQueueStatus(ResponseModel):
    """What ``orch work-queue inspect`` shows besides the queue itself."""

    work_queue: WorkQueue
    waiting: int
    late: int
    active: int
    dead_letters: int | None = None
    dead_letter_samples: list[str] = Field(default_factory=list)
    agents: list[Agent] = Field(default_factory=list)


class GetRunsRequest(OrchModel):
    """``POST /api/work_queues/{name}/get_runs``: runs due now, waiting up to ``wait_seconds`` for one."""

    limit: int = Field(default=10, ge=1, le=100)
    wait_seconds: float = Field(default=0.0, ge=0, le=20)
    agent_name: str | None = Field(default=None, max_length=200)


class WorkQueuesGetRunsRequest(GetRunsRequest):
    """``POST /api/work_queues/get_runs``: the due runs of several queues, higher-priority queues' runs first.

    One call decides which runs an agent polling several queues should start next, so a free slot always goes
    to the best due run; ``limit``, ``wait_seconds`` and ``agent_name`` mean what they mean for one queue.
    """

    work_queue_names: list[WorkQueueName] = Field(min_length=1, max_length=100)


class GetRunsResponse(ResponseModel):
    runs: list[FlowRun]


class AgentHeartbeat(OrchModel):
    name: str = Field(min_length=1, max_length=200)
    work_queues: list[str] = Field(default_factory=list, max_length=100)
    infra_type: str | None = Field(default=None, max_length=20)
    hostname: str | None = Field(default=None, max_length=500)
    status: str = Field(default="ONLINE", pattern=r"^(ONLINE|STOPPING|OFFLINE)$")


class Agent(ObjectBase):
    name: str
    work_queues: list[str] = Field(default_factory=list)
    infra_type: str | None = None
    hostname: str | None = None
    last_seen: UtcDateTime | None = None
    status: str = "ONLINE"


class RunMessage(OrchModel):
    """The body of a run message on a work queue's SQS queue."""

    flow_run_id: uuid.UUID


WorkQueueStatus.model_rebuild()
