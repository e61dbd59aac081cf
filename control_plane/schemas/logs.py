"""Log lines of flow and task runs: append-only, written in batches."""

from __future__ import annotations

import uuid

from pydantic import Field

from orch.control_plane.schemas.base import OrchModel, ResponseModel, UtcDateTime


class LogCreate(OrchModel):
    name: str = Field(default="orch", max_length=200)
    level: int = Field(ge=0, le=100)
    message: str = Field(max_length=200_000)
    timestamp: UtcDateTime
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None


class Log(ResponseModel):
    id: uuid.UUID
    name: str
    level: int
    message: str
    timestamp: UtcDateTime
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None


class LogPage(ResponseModel):
    results: list[Log]
    next_cursor: str | None = None
