"""Run states: the nine state types, their well-known names, and the State object.

A state is a *type* (what the orchestration rules reason about) and a *name* (what users read). Several names share
a type, as in Prefect: ``Late`` and ``AwaitingRetry`` are ``SCHEDULED``; ``Retrying`` is ``RUNNING``; ``Cached`` is
``COMPLETED``; ``TimedOut`` is ``FAILED``; ``Skipped`` is ``CANCELLED``.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

from pydantic import Field

from orch.control_plane.schemas.base import OrchModel, ResponseModel, UtcDateTime, now_utc


class StateType(enum.StrEnum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"


TERMINAL_STATES: frozenset[StateType] = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)
# States in which a run holds infrastructure (counted against work-queue concurrency limits).
ACTIVE_STATES: frozenset[StateType] = frozenset({StateType.PENDING, StateType.RUNNING, StateType.CANCELLING})

DEFAULT_NAMES: dict[StateType, str] = {
    StateType.SCHEDULED: "Scheduled",
    StateType.PENDING: "Pending",
    StateType.RUNNING: "Running",
    StateType.COMPLETED: "Completed",
    StateType.FAILED: "Failed",
    StateType.CANCELLED: "Cancelled",
    StateType.CRASHED: "Crashed",
    StateType.PAUSED: "Paused",
    StateType.CANCELLING: "Cancelling",
}


class StateDetails(OrchModel):
    """Extra facts a state carries; which ones are set depends on the state."""

    scheduled_time: UtcDateTime | None = None
    cache_key: str | None = Field(default=None, max_length=2000)
    cache_expiration: UtcDateTime | None = None
    retriable: bool | None = None
    pause_timeout: UtcDateTime | None = None
    pause_key: str | None = Field(default=None, max_length=500)
    child_flow_run_id: uuid.UUID | None = None
    traceback: str | None = Field(default=None, max_length=100_000)


class StateCreate(OrchModel):
    """A state as proposed by a client. The server fills in the timestamp when it is missing."""

    type: StateType
    name: str | None = Field(default=None, max_length=100)
    message: str | None = Field(default=None, max_length=20_000)
    timestamp: UtcDateTime | None = None
    state_details: StateDetails = Field(default_factory=StateDetails)
    # A reference to a persisted result ({"storage_key", "serializer", ...}) or a small JSON value.
    data: Any = None

    def resolved_name(self) -> str:
        return self.name or DEFAULT_NAMES[self.type]


class State(ResponseModel):
    """A state as the server records and returns it."""

    id: uuid.UUID | None = None
    type: StateType
    name: str
    timestamp: UtcDateTime = Field(default_factory=now_utc)
    message: str | None = None
    state_details: StateDetails = Field(default_factory=StateDetails)
    data: Any = None

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_STATES


class SetStateStatus(enum.StrEnum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    WAIT = "WAIT"
    ABORT = "ABORT"


class OrchestrationDetails(ResponseModel):
    reason: str | None = None
    delay_seconds: float | None = None


class OrchestrationResult(ResponseModel):
    """The server's answer to a proposed state: the status and the state the run is in afterwards."""

    status: SetStateStatus
    state: State | None = None
    details: OrchestrationDetails = Field(default_factory=OrchestrationDetails)


class SetStateRequest(OrchModel):
    state: StateCreate
    force: bool = False
