"""One test (or table) per orchestration rule: what it rejects, waits, aborts or redirects, and what it lets through.

Pure tests: each builds an ``OrchestrationContext`` around a ``RunView`` and runs it through the real policy with
``propose()``; no database is involved.
"""

from __future__ import annotations

import pytest

from orch.control_plane.orchestration import CoreFlowPolicy, CoreTaskPolicy, MinimalPolicy, propose
from orch.control_plane.orchestration import rules as r
from orch.control_plane.schemas.states import TERMINAL_STATES, SetStateStatus, StateType
from tests.control_plane.orchestration._helpers import NOW, at, context, proposal, st_

pytestmark = pytest.mark.unit

S = StateType
ACCEPT, REJECT, WAIT, ABORT = (SetStateStatus.ACCEPT, SetStateStatus.REJECT, SetStateStatus.WAIT, SetStateStatus.ABORT)
TERMINAL = sorted(TERMINAL_STATES)
NON_TERMINAL = sorted(set(StateType) - TERMINAL_STATES)


def flow(initial, proposed, **kwargs):  # type: ignore[no-untyped-def]
    ctx = context(initial, proposed, **kwargs)
    propose(ctx, CoreFlowPolicy())
    return ctx


def assert_refused(ctx, status: SetStateStatus) -> None:  # type: ignore[no-untyped-def]
    """A refused proposal: the given status, a reason, the run's state and version untouched."""
    initial_version = ctx.run.state_version
    assert ctx.status is status, ctx.reason
    assert ctx.reason
    assert not ctx.writes
    result = ctx.result()
    assert result.status is status
    assert result.details.reason == ctx.reason
    assert ctx.run.state_version == initial_version


def assert_accepted(ctx, type_: StateType, name: str | None = None) -> None:  # type: ignore[no-untyped-def]
    assert ctx.status is ACCEPT, ctx.reason
    assert ctx.writes
    assert ctx.run.state is not None
    assert ctx.run.state.type is type_
    if name is not None:
        assert ctx.run.state.name == name
    assert ctx.result().state is not None
    assert ctx.result().state.type is type_


# -- AbortWhenCancelled -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("initial", [S.CANCELLING, S.CANCELLED])
@pytest.mark.parametrize("target", [S.PENDING, S.RUNNING])
def test_abort_when_cancelled_aborts_a_start(initial: StateType, target: StateType) -> None:
    ctx = flow(st_(initial), proposal(target))
    assert_refused(ctx, ABORT)
    assert initial.value.lower() in (ctx.reason or "")


def test_abort_when_cancelled_lets_a_cancelling_run_end_cancelled() -> None:
    ctx = flow(st_(S.CANCELLING), proposal(S.CANCELLED))
    assert_accepted(ctx, S.CANCELLED)


# -- PreventLeavingTerminalStates -------------------------------------------------------------------------------


@pytest.mark.parametrize("initial", TERMINAL)
@pytest.mark.parametrize("target", [t for t in StateType if t is not S.SCHEDULED])
def test_terminal_states_cannot_be_left(initial: StateType, target: StateType) -> None:
    ctx = flow(st_(initial), proposal(target))
    # A cancelled run asked to start is told to stop (ABORT) rather than merely refused.
    expected = ABORT if initial is S.CANCELLED and target in (S.PENDING, S.RUNNING) else REJECT
    assert_refused(ctx, expected)


@pytest.mark.parametrize("initial", TERMINAL)
def test_terminal_state_can_be_rescheduled_and_end_time_is_cleared(initial: StateType) -> None:
    ctx = flow(st_(initial), proposal(S.SCHEDULED), end_time=at(-50), run_count=1, start_time=at(-60))
    assert_accepted(ctx, S.SCHEDULED, "Scheduled")
    assert ctx.run.end_time is None
    assert ctx.run.start_time == at(-60), "a re-run keeps the first start time"


@pytest.mark.parametrize("initial", TERMINAL)
def test_terminal_state_cannot_be_marked_late(initial: StateType) -> None:
    ctx = flow(st_(initial), proposal(S.SCHEDULED, "Late"))
    assert_refused(ctx, REJECT)


# -- CancellingOnlyWhileActive / HandleCancellingTransitions ----------------------------------------------------


def test_cancelling_twice_is_rejected() -> None:
    assert_refused(flow(st_(S.CANCELLING), proposal(S.CANCELLING)), REJECT)


@pytest.mark.parametrize("target", [S.SCHEDULED, S.PAUSED])
def test_cancelling_run_cannot_go_back_to_waiting(target: StateType) -> None:
    assert_refused(flow(st_(S.CANCELLING), proposal(target)), REJECT)


@pytest.mark.parametrize("target", [S.CANCELLED, S.FAILED, S.CRASHED])
def test_cancelling_run_can_end(target: StateType) -> None:
    assert_accepted(flow(st_(S.CANCELLING), proposal(target)), target)


def test_cancelling_run_that_finishes_can_complete() -> None:
    """``HandleCancellingTransitions`` documents "a cancelling run can only end" and lets every final state through;
    a flow that finishes its work before the cancellation reaches it reports Completed, which is a final state."""
    assert_accepted(flow(st_(S.CANCELLING), proposal(S.COMPLETED)), S.COMPLETED)


# -- CancelRunsWithoutInfrastructure ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "initial",
    [None, st_(S.SCHEDULED), st_(S.SCHEDULED, "Late"), st_(S.SCHEDULED, "AwaitingRetry"), st_(S.PAUSED)],
    ids=["new", "scheduled", "late", "awaiting-retry", "paused"],
)
def test_cancelling_a_run_without_infrastructure_cancels_it_at_once(initial) -> None:  # type: ignore[no-untyped-def]
    ctx = flow(initial, proposal(S.CANCELLING, message="stop please"))
    assert ctx.status is ACCEPT
    assert ctx.redirected
    assert ctx.reason
    assert ctx.run.state is not None
    assert ctx.run.state.type is S.CANCELLED
    assert ctx.run.state.message == "stop please"
    assert ctx.run.end_time == NOW


@pytest.mark.parametrize("initial", [S.PENDING, S.RUNNING])
def test_cancelling_a_run_with_infrastructure_waits_for_it(initial: StateType) -> None:
    ctx = flow(st_(initial), proposal(S.CANCELLING))
    assert_accepted(ctx, S.CANCELLING)
    assert not ctx.redirected
    assert ctx.run.end_time is None


# -- EnforceSingleClaim -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("initial", [S.PENDING, S.RUNNING, S.PAUSED, S.COMPLETED, S.FAILED, S.CRASHED])
def test_claim_is_rejected_unless_the_run_waits_to_start(initial: StateType) -> None:
    ctx = flow(st_(initial), proposal(S.PENDING))
    assert_refused(ctx, REJECT)


@pytest.mark.parametrize(
    "initial",
    [None, st_(S.SCHEDULED, scheduled_time=at(-5)), st_(S.SCHEDULED, "Late", scheduled_time=at(-60))],
    ids=["new", "scheduled", "late"],
)
def test_claim_is_accepted_from_a_waiting_run(initial) -> None:  # type: ignore[no-untyped-def]
    ctx = flow(initial, proposal(S.PENDING))
    assert_accepted(ctx, S.PENDING)


def test_claim_of_an_awaiting_retry_run_is_accepted_when_due() -> None:
    ctx = flow(st_(S.SCHEDULED, "AwaitingRetry", scheduled_time=at(-1)), proposal(S.PENDING))
    assert_accepted(ctx, S.PENDING)


# -- PreventDuplicateRunning ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, "Retrying"])
def test_running_twice_is_rejected(name: str | None) -> None:
    ctx = flow(st_(S.RUNNING), proposal(S.RUNNING, name), run_count=1)
    assert_refused(ctx, REJECT)
    assert ctx.run.run_count == 1


# -- RequireRunningBeforeCompletion -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "initial", [None, st_(S.SCHEDULED), st_(S.PENDING), st_(S.PAUSED)], ids=["new", "scheduled", "pending", "paused"]
)
def test_completion_requires_running(initial) -> None:  # type: ignore[no-untyped-def]
    assert_refused(flow(initial, proposal(S.COMPLETED)), REJECT)


@pytest.mark.parametrize("name", [None, "Cached"])
def test_running_run_can_complete(name: str | None) -> None:
    assert_accepted(flow(st_(S.RUNNING), proposal(S.COMPLETED, name)), S.COMPLETED, name or "Completed")


# -- PauseOnlyWhenRunning ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "initial", [None, st_(S.SCHEDULED), st_(S.PENDING), st_(S.PAUSED)], ids=["new", "scheduled", "pending", "paused"]
)
def test_pause_requires_running(initial) -> None:  # type: ignore[no-untyped-def]
    assert_refused(flow(initial, proposal(S.PAUSED)), REJECT)


def test_running_run_can_pause_and_resume() -> None:
    ctx = flow(st_(S.RUNNING, timestamp=at(-10)), proposal(S.PAUSED), run_count=1)
    assert_accepted(ctx, S.PAUSED)
    resumed = flow(ctx.run.state, proposal(S.RUNNING), now=at(5), **_fields(ctx.run))
    assert_accepted(resumed, S.RUNNING)


def _fields(run):  # type: ignore[no-untyped-def]
    return {
        "state_version": run.state_version,
        "run_count": run.run_count,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "total_run_time": run.total_run_time,
        "expected_start_time": run.expected_start_time,
    }


# -- LateOnlyFromScheduled / OnlyLateWhenLate -------------------------------------------------------------------


@pytest.mark.parametrize(
    "initial",
    [None, st_(S.PENDING), st_(S.RUNNING), st_(S.PAUSED), st_(S.CANCELLING)],
    ids=["new", "pending", "running", "paused", "cancelling"],
)
def test_only_a_scheduled_run_can_be_late(initial) -> None:  # type: ignore[no-untyped-def]
    assert_refused(flow(initial, proposal(S.SCHEDULED, "Late")), REJECT)


def test_late_is_rejected_before_the_threshold_has_passed() -> None:
    initial = st_(S.SCHEDULED, scheduled_time=at(-10))
    ctx = flow(initial, proposal(S.SCHEDULED, "Late"), late_runs_threshold=15)
    assert_refused(ctx, REJECT)
    assert "not late" in (ctx.reason or "")


def test_late_is_rejected_for_a_run_without_scheduled_time() -> None:
    assert_refused(flow(st_(S.SCHEDULED), proposal(S.SCHEDULED, "Late")), REJECT)


def test_late_twice_is_rejected() -> None:
    initial = st_(S.SCHEDULED, "Late", scheduled_time=at(-600))
    assert_refused(flow(initial, proposal(S.SCHEDULED, "Late")), REJECT)


def test_late_is_accepted_past_the_threshold_and_keeps_the_scheduled_time() -> None:
    initial = st_(S.SCHEDULED, scheduled_time=at(-20))
    ctx = flow(initial, proposal(S.SCHEDULED, "Late"), late_runs_threshold=15, expected_start_time=at(-20))
    assert_accepted(ctx, S.SCHEDULED, "Late")
    assert ctx.run.state is not None
    assert ctx.run.state.state_details.scheduled_time == at(-20)
    assert ctx.run.expected_start_time == at(-20)


def test_an_overdue_retry_can_be_late() -> None:
    initial = st_(S.SCHEDULED, "AwaitingRetry", scheduled_time=at(-100))
    assert_accepted(flow(initial, proposal(S.SCHEDULED, "Late")), S.SCHEDULED, "Late")


def test_rescheduling_a_scheduled_run_is_accepted() -> None:
    ctx = flow(st_(S.SCHEDULED, scheduled_time=at(-5)), proposal(S.SCHEDULED, scheduled_time=at(300)))
    assert_accepted(ctx, S.SCHEDULED)
    assert ctx.run.expected_start_time == at(300)


# -- WaitForScheduledTime ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [S.PENDING, S.RUNNING])
def test_start_before_the_scheduled_time_waits_with_the_delay(target: StateType) -> None:
    ctx = flow(st_(S.SCHEDULED, scheduled_time=at(60)), proposal(target))
    assert_refused(ctx, WAIT)
    assert ctx.delay_seconds == pytest.approx(60)
    assert ctx.result().details.delay_seconds == pytest.approx(60)


@pytest.mark.parametrize("early", [0.0, 0.5, r.SCHEDULED_TIME_TOLERANCE])
def test_start_within_the_clock_skew_tolerance_is_accepted(early: float) -> None:
    ctx = flow(st_(S.SCHEDULED, scheduled_time=at(early)), proposal(S.PENDING))
    assert_accepted(ctx, S.PENDING)


def test_retry_waits_for_its_retry_time() -> None:
    ctx = flow(st_(S.SCHEDULED, "AwaitingRetry", scheduled_time=at(30)), proposal(S.RUNNING, "Retrying"))
    assert_refused(ctx, WAIT)
    assert ctx.delay_seconds == pytest.approx(30)


# -- EnforceWorkQueueConcurrency --------------------------------------------------------------------------------


def _usage(active: int, limit: int | None, calls: list[str]):  # type: ignore[no-untyped-def]
    def usage(queue: str) -> tuple[int, int | None]:
        calls.append(queue)
        return active, limit

    return usage


def test_claim_waits_when_the_work_queue_is_full() -> None:
    calls: list[str] = []
    ctx = flow(
        st_(S.SCHEDULED, scheduled_time=at(-1)),
        proposal(S.PENDING),
        work_queue_name="q",
        queue_usage=_usage(2, 2, calls),
    )
    assert_refused(ctx, WAIT)
    assert ctx.delay_seconds
    assert ctx.delay_seconds > 0
    assert calls == ["q"]


@pytest.mark.parametrize(("active", "limit"), [(1, 2), (0, 0 + 1), (50, None)])
def test_claim_is_accepted_below_the_work_queue_limit(active: int, limit: int | None) -> None:
    calls: list[str] = []
    ctx = flow(st_(S.SCHEDULED), proposal(S.PENDING), work_queue_name="q", queue_usage=_usage(active, limit, calls))
    assert_accepted(ctx, S.PENDING)


def test_run_without_work_queue_is_not_limited() -> None:
    calls: list[str] = []
    ctx = flow(st_(S.SCHEDULED), proposal(S.PENDING), queue_usage=_usage(9, 1, calls))
    assert_accepted(ctx, S.PENDING)
    assert calls == []


def test_work_queue_limit_does_not_apply_to_starting_a_claimed_run() -> None:
    calls: list[str] = []
    ctx = flow(st_(S.PENDING), proposal(S.RUNNING), work_queue_name="q", queue_usage=_usage(5, 1, calls))
    assert_accepted(ctx, S.RUNNING)


# -- RetryFailedFlows -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, "TimedOut"])
def test_failure_with_retries_left_is_redirected_to_awaiting_retry(name: str | None) -> None:
    failed = proposal(S.FAILED, name, message="boom")
    failed.state_details.traceback = "Traceback..."
    ctx = flow(st_(S.RUNNING, timestamp=at(-7)), failed, run_count=1, retries=2, retry_delay=30, state_version=3)
    assert ctx.status is REJECT
    assert ctx.redirected
    assert ctx.writes
    assert ctx.reason
    assert "attempt 2 of 3" in ctx.reason
    state = ctx.result().state
    assert state is not None
    assert state.type is S.SCHEDULED
    assert state.name == "AwaitingRetry"
    assert state.message == "boom"
    assert state.state_details.scheduled_time == at(30)
    assert state.state_details.traceback == "Traceback..."
    assert ctx.run.state_version == 4
    assert ctx.run.expected_start_time == at(30)
    assert ctx.run.end_time is None
    assert ctx.run.total_run_time == pytest.approx(7)


def test_failure_without_retries_left_is_final() -> None:
    ctx = flow(st_(S.RUNNING), proposal(S.FAILED), run_count=2, retries=1)
    assert_accepted(ctx, S.FAILED)
    assert ctx.run.end_time == NOW


def test_failure_without_retries_is_final() -> None:
    assert_accepted(flow(st_(S.RUNNING), proposal(S.FAILED), run_count=1, retries=0), S.FAILED)


def test_non_retriable_failure_is_final_even_with_retries_left() -> None:
    ctx = flow(st_(S.RUNNING), proposal(S.FAILED, retriable=False), run_count=1, retries=5)
    assert_accepted(ctx, S.FAILED)


@pytest.mark.parametrize("initial", [S.PENDING, S.PAUSED, S.SCHEDULED])
def test_failure_before_running_is_not_retried(initial: StateType) -> None:
    ctx = flow(st_(initial), proposal(S.FAILED), run_count=0, retries=3)
    assert_accepted(ctx, S.FAILED)


def test_crash_with_retries_left_is_retried_like_a_failure() -> None:
    ctx = flow(st_(S.RUNNING), proposal(S.CRASHED, message="process died"), run_count=1, retries=1, retry_delay=5)
    assert ctx.status is REJECT
    assert ctx.redirected
    state = ctx.result().state
    assert state is not None
    assert state.name == "AwaitingRetry"
    assert state.state_details.scheduled_time == at(5)
    final = flow(st_(S.RUNNING), proposal(S.CRASHED), run_count=2, retries=1)
    assert_accepted(final, S.CRASHED)


def test_cancellation_is_not_retried() -> None:
    ctx = flow(st_(S.RUNNING), proposal(S.CANCELLED), run_count=1, retries=3)
    assert_accepted(ctx, S.CANCELLED)


# -- CoreTaskPolicy ---------------------------------------------------------------------------------------------


def task(initial, proposed, **kwargs):  # type: ignore[no-untyped-def]
    ctx = context(initial, proposed, kind="task_run", **kwargs)
    propose(ctx, CoreTaskPolicy())
    return ctx


@pytest.mark.parametrize("initial", TERMINAL)
@pytest.mark.parametrize("target", list(StateType))
def test_task_run_cannot_leave_a_final_state(initial: StateType, target: StateType) -> None:
    assert_refused(task(st_(initial), proposal(target)), REJECT)


@pytest.mark.parametrize(
    ("initial", "target"),
    [(None, S.PENDING), (S.PENDING, S.RUNNING), (S.RUNNING, S.RUNNING), (S.PENDING, S.COMPLETED), (None, S.COMPLETED)],
)
def test_task_run_states_are_otherwise_the_clients_decision(initial: StateType | None, target: StateType) -> None:
    ctx = task(st_(initial) if initial else None, proposal(target))
    assert_accepted(ctx, target)


def test_task_policy_does_not_retry_failures() -> None:
    ctx = task(st_(S.RUNNING), proposal(S.FAILED), run_count=1, retries=3)
    assert_accepted(ctx, S.FAILED)


# -- MinimalPolicy (force) --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("initial", "target"),
    [(S.COMPLETED, S.RUNNING), (S.CANCELLED, S.PENDING), (S.RUNNING, S.RUNNING), (S.PENDING, S.PENDING)],
)
def test_forced_transitions_are_all_accepted_with_bookkeeping(initial: StateType, target: StateType) -> None:
    ctx = context(st_(initial), proposal(target), run_count=1, end_time=at(-1) if initial in TERMINAL_STATES else None)
    propose(ctx, MinimalPolicy())
    assert_accepted(ctx, target)
    assert ctx.run.state_version == 4
    if initial in TERMINAL_STATES:
        assert ctx.run.end_time is None
    if target is S.RUNNING and initial is not S.RUNNING:
        assert ctx.run.run_count == 2
    else:
        assert ctx.run.run_count == 1


def test_forced_cancelling_is_not_redirected() -> None:
    ctx = context(st_(S.SCHEDULED), proposal(S.CANCELLING))
    propose(ctx, MinimalPolicy())
    assert_accepted(ctx, S.CANCELLING)


# -- the policy as a whole --------------------------------------------------------------------------------------


def test_core_flow_policy_lists_every_flow_rule_once() -> None:
    flow_rules = {
        obj
        for obj in vars(r).values()
        if isinstance(obj, type) and issubclass(obj, r.Rule) and obj is not r.Rule and "Task" not in obj.__name__
    }
    assert set(CoreFlowPolicy.RULES) == flow_rules
    assert len(CoreFlowPolicy.RULES) == len(flow_rules)


@pytest.mark.parametrize(
    "path",
    [
        [S.SCHEDULED, S.PENDING, S.RUNNING, S.COMPLETED],
        [S.SCHEDULED, S.PENDING, S.RUNNING, S.PAUSED, S.RUNNING, S.FAILED],
        [S.PENDING, S.RUNNING, S.CANCELLING, S.CANCELLED],
        [S.RUNNING, S.CRASHED, S.SCHEDULED, S.PENDING, S.RUNNING, S.COMPLETED],
    ],
    ids=["happy", "paused", "cancelled", "re-run"],
)
def test_ordinary_lifecycles_are_accepted_step_by_step(path: list[StateType]) -> None:
    initial = None
    fields: dict = {"state_version": 0}
    for i, target in enumerate(path):
        ctx = flow(
            initial, proposal(target, scheduled_time=at(i) if target is S.SCHEDULED else None), now=at(i), **fields
        )
        assert_accepted(ctx, target)
        initial, fields = ctx.run.state, _fields(ctx.run)
    assert fields["state_version"] == len(path)


def test_reason_is_none_on_plain_accept() -> None:
    ctx = flow(st_(S.PENDING), proposal(S.RUNNING))
    assert ctx.status is ACCEPT
    assert ctx.result().details.reason is None
    assert ctx.result().details.delay_seconds is None


def test_wait_never_has_a_negative_delay() -> None:
    ctx = context(st_(S.SCHEDULED), proposal(S.PENDING))
    ctx.wait(-3, "x")
    assert ctx.delay_seconds == 0.0


def test_proposed_timestamp_in_the_future_is_clamped_to_now() -> None:
    ctx = flow(st_(S.PENDING), proposal(S.RUNNING, timestamp=at(3600)))
    assert ctx.run.state is not None
    assert ctx.run.state.timestamp == NOW
