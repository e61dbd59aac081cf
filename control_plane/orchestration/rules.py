"""The orchestration rules: small classes, each refusing one kind of bad transition.

A rule declares the transitions it looks at with ``FROM_STATES`` and ``TO_STATES`` (``None`` stands for "the run has
no state yet") and, when one matches, ``apply`` may leave the proposal alone, change it, or answer through the
context (``reject``, ``redirect``, ``wait``, ``abort``). A policy (``policies.py``) orders them; the first answer
other than ACCEPT ends the evaluation.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from orch.control_plane.orchestration.context import OrchestrationContext, make_state
from orch.control_plane.schemas.states import TERMINAL_STATES, SetStateStatus, StateType

ALL: frozenset[StateType | None] = frozenset([*StateType, None])
S = StateType

# A run claimed less than this many seconds before its scheduled time is still "on time" (clock skew between hosts).
SCHEDULED_TIME_TOLERANCE = 1.0


class Rule:
    FROM_STATES: ClassVar[frozenset[StateType | None]] = ALL
    TO_STATES: ClassVar[frozenset[StateType | None]] = ALL

    def matches(self, ctx: OrchestrationContext) -> bool:
        initial = ctx.run.state  # ``ctx.initial_type``, without the property calls (every recorded state)
        return (
            initial.type if initial is not None else None
        ) in self.FROM_STATES and ctx.proposed.type in self.TO_STATES

    def apply(self, ctx: OrchestrationContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class AbortWhenCancelled(Rule):
    """ABORT a run that tries to start (Pending/Running) while it is being cancelled or was cancelled.

    The engine or agent that proposed it must stop instead of running work nobody wants any more.
    """

    FROM_STATES = frozenset({S.CANCELLING, S.CANCELLED})
    TO_STATES = frozenset({S.PENDING, S.RUNNING})

    def apply(self, ctx: OrchestrationContext) -> None:
        ctx.abort(f"The run is {ctx.initial_type.value.lower()}; it must not start.")  # type: ignore[union-attr]


class PreventLeavingTerminalStates(Rule):
    """REJECT any transition out of Completed, Failed, Cancelled or Crashed, except an explicit re-run.

    A re-run is a proposal of a Scheduled state (the UI's *Retry* button, ``orch flow-run retry``, or the
    retry rule itself). Everything else would rewrite history.
    """

    FROM_STATES = frozenset(TERMINAL_STATES)
    TO_STATES = ALL - {S.SCHEDULED}

    def apply(self, ctx: OrchestrationContext) -> None:
        assert ctx.initial is not None
        ctx.reject(
            f"The run is already in the final state {ctx.initial.name!r}; it cannot become {ctx.proposed.name!r}."
        )


class EnforceSingleClaim(Rule):
    """REJECT a claim (→ Pending) unless the run is waiting to start (Scheduled, Late, AwaitingRetry) or new.

    This is the exactly-once half of the claim protocol; the other half is the optimistic-concurrency UPDATE on
    ``state_version``, which makes two simultaneous claims of the same run yield one winner.
    """

    FROM_STATES = ALL - {None, S.SCHEDULED}
    TO_STATES = frozenset({S.PENDING})

    def apply(self, ctx: OrchestrationContext) -> None:
        assert ctx.initial is not None
        ctx.reject(f"The run was already claimed: it is {ctx.initial.name!r}.")


class WaitForScheduledTime(Rule):
    """WAIT when a run is claimed or started before its scheduled time; the answer carries the delay."""

    FROM_STATES = frozenset({S.SCHEDULED})
    TO_STATES = frozenset({S.PENDING, S.RUNNING})

    def apply(self, ctx: OrchestrationContext) -> None:
        assert ctx.initial is not None
        scheduled = ctx.initial.state_details.scheduled_time
        if scheduled is None:
            return
        delay = (scheduled - ctx.now).total_seconds()
        if delay > SCHEDULED_TIME_TOLERANCE:
            ctx.wait(delay, f"The run is scheduled to start at {scheduled.isoformat()}.")


class EnforceWorkQueueConcurrency(Rule):
    """WAIT a claim when the run's work queue already has as many active runs as its concurrency limit allows."""

    FROM_STATES = frozenset({S.SCHEDULED, None})
    TO_STATES = frozenset({S.PENDING})

    def apply(self, ctx: OrchestrationContext) -> None:
        queue = ctx.run.work_queue_name
        if queue is None or ctx.queue_usage is None:
            return
        active, limit = ctx.queue_usage(queue)
        if limit is not None and active >= limit:
            ctx.wait(5.0, f"Work queue {queue!r} is at its concurrency limit ({active}/{limit}).")


class PreventDuplicateRunning(Rule):
    """REJECT Running → Running: a run that is already running was started by someone else."""

    FROM_STATES = frozenset({S.RUNNING})
    TO_STATES = frozenset({S.RUNNING})

    def apply(self, ctx: OrchestrationContext) -> None:
        ctx.reject("The run is already running.")


class RequireRunningBeforeCompletion(Rule):
    """REJECT Completed for a flow run that never ran (a result needs a run).

    A run being cancelled may still complete: its engine can finish before the infrastructure is stopped.
    """

    FROM_STATES = ALL - {S.RUNNING, S.CANCELLING}
    TO_STATES = frozenset({S.COMPLETED})

    def apply(self, ctx: OrchestrationContext) -> None:
        state = ctx.initial.name if ctx.initial else "no state"
        ctx.reject(f"A run must be running to complete; it is in {state!r}.")


class PauseOnlyWhenRunning(Rule):
    """REJECT Paused unless the run is running."""

    FROM_STATES = ALL - {S.RUNNING}
    TO_STATES = frozenset({S.PAUSED})

    def apply(self, ctx: OrchestrationContext) -> None:
        state = ctx.initial.name if ctx.initial else "no state"
        ctx.reject(f"Only a running run can pause; it is in {state!r}.")


class RetryFailedFlows(Rule):
    """Turn Running → Failed (or Crashed) into AwaitingRetry while the run has retries left.

    Answers REJECT with the AwaitingRetry state (Prefect's protocol): the engine sees the new state, waits until its
    ``scheduled_time`` and runs the flow again. A Crashed run (its process died; the zombie service or the ECS
    events consumer reports it) is retried the same way: an agent picks the rescheduled run up again.
    """

    FROM_STATES = frozenset({S.RUNNING})
    TO_STATES = frozenset({S.FAILED, S.CRASHED})

    def apply(self, ctx: OrchestrationContext) -> None:
        # Timeouts retry too, as in Prefect; only an explicitly non-retriable failure skips the retries.
        if ctx.proposed.state_details.retriable is False or ctx.run.run_count > ctx.run.retries:
            return
        when = ctx.now + dt.timedelta(seconds=ctx.run.retry_delay)
        retry = make_state(
            S.SCHEDULED,
            "AwaitingRetry",
            timestamp=ctx.now,
            message=ctx.proposed.message,
        )
        retry.state_details.scheduled_time = when
        retry.state_details.traceback = ctx.proposed.state_details.traceback
        ctx.redirect(retry, f"Retrying: attempt {ctx.run.run_count + 1} of {ctx.run.retries + 1}.")


class HandleCancellingTransitions(Rule):
    """REJECT anything but a final state out of Cancelling: a cancelling run can only end."""

    FROM_STATES = frozenset({S.CANCELLING})
    TO_STATES = ALL - TERMINAL_STATES - {S.PENDING, S.RUNNING}

    def apply(self, ctx: OrchestrationContext) -> None:
        ctx.reject(f"The run is being cancelled; it can only end, not become {ctx.proposed.name!r}.")


class CancelRunsWithoutInfrastructure(Rule):
    """Send Cancelling straight to Cancelled for a run nobody has started: nothing needs to be stopped."""

    FROM_STATES = frozenset({None, S.SCHEDULED, S.PAUSED})
    TO_STATES = frozenset({S.CANCELLING})

    def apply(self, ctx: OrchestrationContext) -> None:
        cancelled = make_state(S.CANCELLED, timestamp=ctx.now, message=ctx.proposed.message)
        ctx.redirect(cancelled, "The run had not started; it is cancelled at once.", status=SetStateStatus.ACCEPT)


class CancellingOnlyWhileActive(Rule):
    """REJECT Cancelling → Cancelling (a cancellation is already under way)."""

    FROM_STATES = frozenset({S.CANCELLING})
    TO_STATES = frozenset({S.CANCELLING})

    def apply(self, ctx: OrchestrationContext) -> None:
        ctx.reject("The run is already being cancelled.")


class OnlyLateWhenLate(Rule):
    """REJECT marking a run Late before its scheduled time has passed; keep its scheduled time when it is."""

    FROM_STATES = frozenset({S.SCHEDULED})
    TO_STATES = frozenset({S.SCHEDULED})

    def apply(self, ctx: OrchestrationContext) -> None:
        assert ctx.initial is not None
        scheduled = ctx.initial.state_details.scheduled_time
        if ctx.proposed.name != "Late":
            return
        if ctx.initial.name == "Late":
            ctx.reject("The run is already Late.")
            return
        if scheduled is None or scheduled + dt.timedelta(seconds=ctx.late_runs_threshold) > ctx.now:
            ctx.reject("The run is not late yet.")
            return
        if ctx.proposed.state_details.scheduled_time is None:
            ctx.proposed.state_details.scheduled_time = scheduled


class LateOnlyFromScheduled(Rule):
    """REJECT a Late state for a run that is not waiting to start."""

    FROM_STATES = ALL - {S.SCHEDULED}
    TO_STATES = frozenset({S.SCHEDULED})

    def apply(self, ctx: OrchestrationContext) -> None:
        if ctx.proposed.name == "Late":
            ctx.reject("Only a scheduled run can be late.")


# -- task runs ---------------------------------------------------------------------------------------------------


class PreventTaskLeavingTerminalStates(Rule):
    """REJECT any recorded task-run state after a final one (the SDK retries before failing, not after)."""

    FROM_STATES = frozenset(TERMINAL_STATES)
    TO_STATES = ALL

    def apply(self, ctx: OrchestrationContext) -> None:
        assert ctx.initial is not None
        ctx.reject(f"The task run is already {ctx.initial.name!r}.")
