"""Policies: the ordered rule lists, the bookkeeping applied on acceptance, and ``propose()``."""

from __future__ import annotations

from collections.abc import Sequence

from orch.control_plane.orchestration import rules as r
from orch.control_plane.orchestration.context import OrchestrationContext
from orch.control_plane.schemas.states import TERMINAL_STATES, SetStateStatus, StateType


class Policy:
    """An ordered list of rules. The first rule that answers anything but ACCEPT ends the evaluation."""

    RULES: Sequence[type[r.Rule]] = ()

    def __init__(self) -> None:
        self.rules = [rule() for rule in self.RULES]

    def evaluate(self, ctx: OrchestrationContext) -> None:
        for rule in self.rules:
            if rule.matches(ctx):
                rule.apply(ctx)
                if ctx.decided:
                    return


class CoreFlowPolicy(Policy):
    """The rules every flow-run transition goes through (order matters: aborts first, then refusals, then waits)."""

    RULES = (
        r.AbortWhenCancelled,
        r.PreventLeavingTerminalStates,
        r.CancellingOnlyWhileActive,
        r.HandleCancellingTransitions,
        r.CancelRunsWithoutInfrastructure,
        r.EnforceSingleClaim,
        r.PreventDuplicateRunning,
        r.RequireRunningBeforeCompletion,
        r.PauseOnlyWhenRunning,
        r.LateOnlyFromScheduled,
        r.OnlyLateWhenLate,
        r.WaitForScheduledTime,
        r.EnforceWorkQueueConcurrency,
        r.RetryFailedFlows,
    )


class CoreTaskPolicy(Policy):
    """Task runs are orchestrated by the SDK; the server only refuses states that contradict history."""

    RULES = (r.PreventTaskLeavingTerminalStates,)


class MinimalPolicy(Policy):
    """``force=True``: refuse nothing, but keep the bookkeeping (run counts, times) right."""

    RULES = ()


CORE_FLOW_POLICY = CoreFlowPolicy()
CORE_TASK_POLICY = CoreTaskPolicy()
MINIMAL_POLICY = MinimalPolicy()


def propose(ctx: OrchestrationContext, policy: Policy) -> None:
    """Run a proposal through ``policy`` and, if the run's state changes, update the run's bookkeeping."""
    # A client's clock may run ahead or behind: keep the history in the order things happened (never after the
    # server's clock, never before the state it follows).
    # (Attributes read once into locals: this runs for every state of every task run the SDK records.)
    proposed, initial = ctx.proposed, ctx.run.state
    timestamp = proposed.timestamp
    if timestamp is None or timestamp > ctx.now:
        proposed.timestamp = timestamp = ctx.now
    if initial is not None and timestamp < initial.timestamp:
        proposed.timestamp = initial.timestamp
    policy.evaluate(ctx)
    if ctx.status is SetStateStatus.ACCEPT or ctx.redirected:  # ``ctx.writes``, without the property call
        _bookkeeping(ctx)


def _bookkeeping(ctx: OrchestrationContext) -> None:
    """Counters and timestamps every accepted transition maintains, whatever the policy."""
    run, new = ctx.run, ctx.proposed
    old = run.state
    old_type = old.type if old else None
    if new.type is StateType.SCHEDULED and new.state_details.scheduled_time is None:
        new.state_details.scheduled_time = ctx.now
    if new.type is StateType.SCHEDULED:
        run.expected_start_time = new.state_details.scheduled_time
    elif run.expected_start_time is None:
        run.expected_start_time = ctx.now
    if old is not None and old_type is StateType.RUNNING and new.type is not StateType.RUNNING:
        run.total_run_time += max(0.0, (ctx.now - old.timestamp).total_seconds())
    if new.type is StateType.RUNNING and old_type is not StateType.RUNNING:
        if old_type is not StateType.PAUSED:
            run.run_count += 1
        if run.start_time is None:
            run.start_time = ctx.now
        run.heartbeat_time = ctx.now
    if new.type in TERMINAL_STATES:
        run.end_time = ctx.now
    elif old_type in TERMINAL_STATES:
        run.end_time = None
    run.state = new
    run.state_version += 1
