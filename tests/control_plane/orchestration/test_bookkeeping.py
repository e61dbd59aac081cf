"""The bookkeeping every written transition maintains: run_count, start/end times, total run time, expected start,
heartbeat and ``state_version`` — and that refused proposals (REJECT, WAIT, ABORT) change none of it.

Pure tests: a ``RunView`` is walked through ``propose()`` with a clock the test controls.
"""

from __future__ import annotations

import dataclasses

import pytest

from orch.control_plane.orchestration import CoreFlowPolicy, MinimalPolicy, OrchestrationContext, RunView, propose
from orch.control_plane.schemas.states import SetStateStatus, State, StateType
from tests.control_plane.orchestration._helpers import NOW, at, proposal, st_

pytestmark = pytest.mark.unit

S = StateType


class Run:
    """A run driven through the core flow policy one proposal at a time, as ``set_state`` does."""

    def __init__(self, **fields: object) -> None:
        self.view = RunView(state=None, **fields)  # type: ignore[arg-type]

    def propose(self, state: State, at_seconds: float, *, force: bool = False) -> OrchestrationContext:
        # The policy works on a copy, like set_state does with a fresh row; only written answers are kept.
        view = dataclasses.replace(self.view)
        ctx = OrchestrationContext(kind="flow_run", run=view, proposed=state, now=at(at_seconds))
        propose(ctx, MinimalPolicy() if force else CoreFlowPolicy())
        if ctx.writes:
            self.view = ctx.run
        return ctx

    def go(self, type_: StateType, at_seconds: float, name: str | None = None, **kwargs: object) -> None:
        ctx = self.propose(proposal(type_, name, **kwargs), at_seconds)  # type: ignore[arg-type]
        assert ctx.writes, ctx.reason


def test_run_count_counts_entries_into_running_but_not_resumes_from_pause() -> None:
    run = Run()
    run.go(S.PENDING, 0)
    assert run.view.run_count == 0
    run.go(S.RUNNING, 1)
    assert run.view.run_count == 1
    run.go(S.PAUSED, 2)
    run.go(S.RUNNING, 3)
    assert run.view.run_count == 1, "resuming from Paused is the same attempt"
    run.go(S.COMPLETED, 4)
    run.go(S.SCHEDULED, 5)
    run.go(S.PENDING, 6)
    run.go(S.RUNNING, 7)
    assert run.view.run_count == 2


def test_rejected_running_does_not_count() -> None:
    run = Run()
    run.go(S.RUNNING, 0)
    ctx = run.propose(proposal(S.RUNNING), 1)
    assert ctx.status is SetStateStatus.REJECT
    assert run.view.run_count == 1


def test_forced_running_to_running_is_not_a_new_attempt() -> None:
    run = Run()
    run.go(S.RUNNING, 0)
    ctx = run.propose(proposal(S.RUNNING), 1, force=True)
    assert ctx.status is SetStateStatus.ACCEPT
    assert run.view.run_count == 1


def test_start_time_is_set_once_on_the_first_running() -> None:
    run = Run()
    run.go(S.SCHEDULED, 0, scheduled_time=at(0))
    run.go(S.PENDING, 1)
    assert run.view.start_time is None
    run.go(S.RUNNING, 2)
    assert run.view.start_time == at(2)
    run.go(S.FAILED, 3)
    run.go(S.SCHEDULED, 4)
    run.go(S.PENDING, 5)
    run.go(S.RUNNING, 6)
    assert run.view.start_time == at(2)


def test_end_time_is_set_on_every_final_state_and_cleared_on_re_run() -> None:
    run = Run()
    run.go(S.RUNNING, 0)
    assert run.view.end_time is None
    run.go(S.CRASHED, 10)
    assert run.view.end_time == at(10)
    run.go(S.SCHEDULED, 11)
    assert run.view.end_time is None
    run.go(S.PENDING, 12)
    run.go(S.RUNNING, 13)
    assert run.view.end_time is None
    run.go(S.COMPLETED, 20)
    assert run.view.end_time == at(20)


def test_total_run_time_accumulates_only_time_spent_running() -> None:
    run = Run()
    run.go(S.PENDING, 0)
    run.go(S.RUNNING, 10)
    run.go(S.PAUSED, 25)  # 15 s
    run.go(S.RUNNING, 100)  # paused time does not count
    run.go(S.COMPLETED, 104)  # 4 s
    assert run.view.total_run_time == pytest.approx(19)
    run.go(S.SCHEDULED, 200)
    run.go(S.RUNNING, 300)
    run.go(S.FAILED, 301.5)
    assert run.view.total_run_time == pytest.approx(20.5)


def test_expected_start_time_follows_the_scheduled_time() -> None:
    run = Run()
    run.go(S.SCHEDULED, 0, scheduled_time=at(3600))
    assert run.view.expected_start_time == at(3600)
    run.go(S.SCHEDULED, 1, scheduled_time=at(60))
    assert run.view.expected_start_time == at(60)


def test_scheduled_without_time_is_scheduled_now() -> None:
    run = Run()
    run.go(S.SCHEDULED, 5)
    assert run.view.state is not None
    assert run.view.state.state_details.scheduled_time == at(5)
    assert run.view.expected_start_time == at(5)


def test_expected_start_time_defaults_to_the_first_transition() -> None:
    run = Run()
    run.go(S.PENDING, 7)
    assert run.view.expected_start_time == at(7)
    run.go(S.RUNNING, 9)
    assert run.view.expected_start_time == at(7)


def test_heartbeat_time_is_set_when_the_run_starts() -> None:
    run = Run()
    run.go(S.PENDING, 0)
    assert run.view.heartbeat_time is None
    run.go(S.RUNNING, 3)
    assert run.view.heartbeat_time == at(3)


def test_state_version_counts_written_transitions_only() -> None:
    run = Run()
    versions = []
    answers = []
    steps: list[tuple[State, float]] = [
        (proposal(S.SCHEDULED, scheduled_time=at(30)), 0),  # ACCEPT
        (proposal(S.PENDING), 1),  # WAIT: too early
        (proposal(S.SCHEDULED, "Late"), 2),  # REJECT: not late yet
        (proposal(S.PENDING), 31),  # ACCEPT
        (proposal(S.PENDING), 32),  # REJECT: claimed
        (proposal(S.RUNNING), 33),  # ACCEPT
        (proposal(S.CANCELLING), 34),  # ACCEPT
        (proposal(S.RUNNING), 35),  # ABORT
        (proposal(S.CANCELLED), 36),  # ACCEPT
        (proposal(S.RUNNING), 37),  # ABORT
        (proposal(S.COMPLETED), 38),  # REJECT: terminal
    ]
    for state, when in steps:
        ctx = run.propose(state, when)
        answers.append(ctx.status)
        versions.append(run.view.state_version)
    A, R, W, X = SetStateStatus.ACCEPT, SetStateStatus.REJECT, SetStateStatus.WAIT, SetStateStatus.ABORT
    assert answers == [A, W, R, A, R, A, A, X, A, X, R]
    assert versions == [1, 1, 1, 2, 2, 3, 4, 4, 5, 5, 5]


def test_refused_proposals_change_no_bookkeeping() -> None:
    for status_initial, target in [
        (st_(S.COMPLETED), S.RUNNING),  # REJECT
        (st_(S.SCHEDULED, scheduled_time=at(600)), S.RUNNING),  # WAIT
        (st_(S.CANCELLING), S.RUNNING),  # ABORT
    ]:
        view = RunView(
            state=status_initial,
            state_version=7,
            run_count=2,
            start_time=at(-50),
            end_time=at(-40),
            total_run_time=10,
            expected_start_time=at(-60),
        )
        before = dataclasses.replace(view)
        ctx = OrchestrationContext(kind="flow_run", run=view, proposed=proposal(target), now=NOW)
        propose(ctx, CoreFlowPolicy())
        assert ctx.status is not SetStateStatus.ACCEPT
        assert view == before
        assert ctx.result().state == status_initial


def test_retry_round_trip_counts_two_attempts() -> None:
    run = Run(retries=1, retry_delay=10)
    run.go(S.PENDING, 0)
    run.go(S.RUNNING, 1)
    ctx = run.propose(proposal(S.FAILED), 5)
    assert ctx.status is SetStateStatus.REJECT
    assert run.view.state is not None
    assert run.view.state.name == "AwaitingRetry"
    assert run.view.state_version == 3
    assert run.view.end_time is None
    assert run.view.total_run_time == pytest.approx(4)
    # The engine retries when told to, not before.
    assert run.propose(proposal(S.RUNNING, "Retrying"), 6).status is SetStateStatus.WAIT
    run.go(S.RUNNING, 15, "Retrying")
    assert run.view.run_count == 2
    final = run.propose(proposal(S.FAILED), 16)
    assert final.status is SetStateStatus.ACCEPT
    assert run.view.state is not None
    assert run.view.state.type is S.FAILED
    assert run.view.end_time == at(16)
    assert run.view.total_run_time == pytest.approx(5)
    assert run.view.start_time == at(1)
