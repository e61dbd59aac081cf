"""What a rule sees: the run as it is, the state it is in, the state proposed, and the answer so far."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

from orch.control_plane.schemas.states import (
    DEFAULT_NAMES,
    OrchestrationDetails,
    OrchestrationResult,
    SetStateStatus,
    State,
    StateType,
)


@dataclasses.dataclass(slots=True)
class RunView:
    """The orchestration-relevant fields of a run, detached from the database row.

    Rules read it; bookkeeping writes it; the model layer copies the changes back to the row in one UPDATE.
    """

    state: State | None
    state_version: int = 0
    run_count: int = 0
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    total_run_time: float = 0.0
    expected_start_time: dt.datetime | None = None
    heartbeat_time: dt.datetime | None = None
    retries: int = 0
    retry_delay: float = 0.0
    work_queue_name: str | None = None


@dataclasses.dataclass(slots=True)
class OrchestrationContext:
    """One proposal on its way through a policy. Slotted, as is ``RunView``: the task-run batch builds three per
    task run the SDK records."""

    kind: Literal["flow_run", "task_run"]
    run: RunView
    proposed: State
    now: dt.datetime
    late_runs_threshold: float = 15.0
    # Asks the database how many runs of a work queue hold infrastructure, and the queue's limit.
    queue_usage: Callable[[str], tuple[int, int | None]] | None = None
    status: SetStateStatus = SetStateStatus.ACCEPT
    reason: str | None = None
    delay_seconds: float | None = None
    # Set by a redirecting REJECT: the state the run goes to instead of the proposed one.
    redirected: bool = False

    @property
    def initial(self) -> State | None:
        return self.run.state

    @property
    def initial_type(self) -> StateType | None:
        return self.run.state.type if self.run.state else None

    @property
    def decided(self) -> bool:
        return self.status is not SetStateStatus.ACCEPT or self.redirected

    # -- answers a rule can give -------------------------------------------------------------------------------

    def reject(self, reason: str) -> None:
        """Refuse the proposal; the run keeps its current state."""
        self.status = SetStateStatus.REJECT
        self.reason = reason

    def redirect(self, state: State, reason: str, status: SetStateStatus = SetStateStatus.REJECT) -> None:
        """Put the run into ``state`` instead of the proposed one (Prefect's 'reject with a new state')."""
        self.proposed = state
        self.status = status
        self.reason = reason
        self.redirected = True

    def wait(self, delay_seconds: float, reason: str) -> None:
        """Not yet: propose again after ``delay_seconds``."""
        self.status = SetStateStatus.WAIT
        self.delay_seconds = max(0.0, delay_seconds)
        self.reason = reason

    def abort(self, reason: str) -> None:
        """Stop: the caller must give up on this run."""
        self.status = SetStateStatus.ABORT
        self.reason = reason

    @property
    def writes(self) -> bool:
        """Whether the run's state changes (ACCEPT, or a redirect)."""
        return self.status is SetStateStatus.ACCEPT or self.redirected

    def result(self) -> OrchestrationResult:
        state = self.proposed if self.writes else self.run.state
        return OrchestrationResult(
            status=self.status,
            state=state,
            details=OrchestrationDetails(reason=self.reason, delay_seconds=self.delay_seconds),
        )


def make_state(type_: StateType, name: str | None = None, **fields: Any) -> State:
    return State(type=type_, name=name or DEFAULT_NAMES[type_], **fields)
