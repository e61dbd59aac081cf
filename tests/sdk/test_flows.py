"""Flow runs end to end on the embedded control plane: states, final-state rule, retries, subflows, hooks."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from typing import Any

import pytest
from pydantic import BaseModel

from orch import flow, runtime, tags, task
from orch.context import get_run_context
from orch.exceptions import FlowTimeoutError, ParameterValidationError
from orch.states import Completed, Failed, State, StateType

pytestmark = pytest.mark.unit


@task
def ok(x: int) -> int:
    return x


@task
def boom() -> None:
    raise ValueError("task failed")


def test_a_flow_run_and_its_task_runs_are_recorded(read: Any) -> None:
    @flow(tags=["etl"])
    def pipeline(n: int) -> int:
        return sum(ok(i) for i in range(n))

    with tags("nightly"):
        state = pipeline(3, return_state=True)
    assert state.is_completed()
    assert state.result() == 3
    [run] = read.flow_runs()
    assert (run.state_type, run.state_name, run.run_count) == ("COMPLETED", "Completed", 1)
    assert run.parameters == {"n": 3}
    assert sorted(run.tags) == ["etl", "nightly"]
    task_runs = read.task_runs(run.id)
    assert sorted(t.name for t in task_runs) == ["ok-0", "ok-1", "ok-2"]
    assert {t.state_name for t in task_runs} == {"Completed"}
    assert all(t.flow_run_id == run.id for t in task_runs)
    assert sorted(t.tags for t in task_runs)[0] == ["nightly"]
    history = read.task_run_states(task_runs[0].id)
    assert [s.name for s in history] == ["Pending", "Running", "Completed"]


def test_an_exception_escaping_the_flow_fails_it(read: Any) -> None:
    @flow
    def failing() -> None:
        boom()

    with pytest.raises(ValueError, match="task failed"):
        failing()
    state = failing(return_state=True)
    assert state.is_failed()
    assert "ValueError: task failed" in (state.message or "")
    runs = read.flow_runs()
    assert {r.state_type for r in runs} == {"FAILED"}
    assert "Traceback" in (runs[0].state.state_details.traceback or "")


def test_returned_failed_states_or_futures_fail_the_flow_caught_ones_do_not() -> None:
    @flow
    def returns_failed_state() -> Any:
        return boom(return_state=True)

    @flow
    def returns_failed_future() -> Any:
        return [ok.submit(1), boom.submit()]

    @flow
    def swallows_failure() -> str:
        boom(return_state=True)
        return "fine"

    @flow
    def returns_manual_state() -> State:
        return Completed(message="all good", result=7)

    assert returns_failed_state(return_state=True).is_failed()
    state = returns_failed_future(return_state=True)
    assert state.is_failed()
    assert state.message == "1/2 states failed."
    with pytest.raises(ValueError, match="task failed"):
        state.result()
    assert swallows_failure() == "fine"
    assert returns_manual_state() == 7


def test_returned_futures_are_resolved_to_values() -> None:
    @flow
    def returns_futures() -> Any:
        return {"a": ok.submit(1), "b": [ok.submit(2)]}

    assert returns_futures() == {"a": 1, "b": [2]}


def test_flow_retries_are_decided_by_the_server(read: Any) -> None:
    attempts: list[int] = []

    @flow(retries=1, retry_delay_seconds=0.2)
    def flaky() -> str:
        attempts.append(runtime.flow_run.run_count)  # type: ignore[arg-type]
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return "second attempt works"

    assert flaky() == "second attempt works"
    assert attempts == [1, 2]
    [run] = read.flow_runs()
    assert (run.state_name, run.run_count) == ("Completed", 2)
    history = read.flow_run_states(run.id)
    names = [s.name for s in history]
    assert names == ["Running", "AwaitingRetry", "Retrying", "Completed"]
    awaiting = history[1]
    failed_at = awaiting.timestamp
    assert awaiting.state_details.scheduled_time >= failed_at + dt.timedelta(seconds=0.2)
    assert history[2].timestamp >= awaiting.state_details.scheduled_time  # the engine waited until then


def test_flow_without_retries_left_fails(read: Any) -> None:
    calls = []

    @flow(retries=1)
    def always_fails() -> None:
        calls.append(1)
        raise RuntimeError("nope")

    assert always_fails(return_state=True).is_failed()
    assert len(calls) == 2
    assert read.flow_runs()[0].run_count == 2


def test_subflows_are_linked_to_a_task_run_in_the_parent(read: Any) -> None:
    @flow
    def child(x: int) -> int:
        return ok(x) * 10

    @flow
    def parent() -> int:
        return child(1) + child(2)

    assert parent() == 30
    runs = read.flow_runs()
    parent_run = next(r for r in runs if r.parent_task_run_id is None)
    children = [r for r in runs if r.parent_task_run_id is not None]
    assert len(children) == 2
    parent_tasks = {t.id: t for t in read.task_runs(parent_run.id)}
    for child_run in children:
        link = parent_tasks[child_run.parent_task_run_id]
        assert link.state_name == "Completed"
        assert link.state.state_details.child_flow_run_id == child_run.id
        assert [t.name for t in read.task_runs(child_run.id)] == ["ok-0"]


class Point(BaseModel):
    x: int
    y: int


def test_validate_parameters_coerces_and_refuses() -> None:
    @flow
    def typed(n: int, when: dt.date, point: Point, anything=None) -> tuple[Any, ...]:  # type: ignore[no-untyped-def]
        return n, when, point, anything

    n, when, point, anything = typed("3", "2024-01-02", {"x": "1", "y": 2}, anything=object)
    assert (n, when, point, anything) == (3, dt.date(2024, 1, 2), Point(x=1, y=2), object)
    with pytest.raises(ParameterValidationError, match=r"parameter 'n'.*valid integer"):
        typed("three", "2024-01-02", {"x": 1, "y": 2})
    with pytest.raises(ParameterValidationError, match=r"parameter 'point\.y'"):
        typed(1, "2024-01-02", {"x": 1})
    with pytest.raises(TypeError, match="missing a required argument"):
        typed(1)  # type: ignore[call-arg]

    @flow(validate_parameters=False)
    def untyped(n: int) -> Any:
        return n

    assert untyped("3") == "3"  # type: ignore[arg-type]


def test_flow_hooks_fire_with_flow_run_and_state() -> None:
    seen: list[tuple[str, str, str]] = []

    def hook(kind: str) -> Any:
        return lambda f, run, state: seen.append((kind, f.name, state.name))

    @flow(on_completion=[hook("completion")], on_failure=[hook("failure")], on_running=[hook("running")])
    def hooked(fail: bool) -> None:
        if fail:
            raise ValueError("x")

    hooked(False)
    hooked(True, return_state=True)
    assert seen == [
        ("running", "hooked", "Running"),
        ("completion", "hooked", "Completed"),
        ("running", "hooked", "Running"),
        ("failure", "hooked", "Failed"),
    ]


def test_on_crashed_fires_for_base_exceptions(read: Any) -> None:
    seen: list[str] = []

    @flow(on_crashed=[lambda f, run, state: seen.append(state.name)])
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert seen == ["Crashed"]
    assert read.flow_runs()[0].state_type == "CRASHED"


def test_cancellation_stops_the_flow_at_the_next_task(read: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from orch._engine import heartbeats

    seen: list[str] = []
    started = threading.Event()
    go_on = threading.Event()

    @flow(on_cancellation=[lambda f, run, state: seen.append(state.name)])
    def long_running() -> None:
        ok(1)
        started.set()
        assert go_on.wait(10)
        ok(2)

    def cancel() -> None:
        from orch.control_plane.schemas.states import StateCreate

        assert started.wait(10)
        run = read.flow_runs()[0]
        read.client.set_flow_run_state(run.id, StateCreate(type="CANCELLING"))
        heartbeats.beat_now()
        deadline = threading.Event()
        for _ in range(100):
            if get_cancel_event(run.id).is_set():
                break
            deadline.wait(0.05)
        go_on.set()

    def get_cancel_event(run_id: Any) -> threading.Event:
        return heartbeats._runs[run_id][1]

    thread = threading.Thread(target=cancel)
    thread.start()
    state = long_running(return_state=True)
    thread.join()
    assert state.is_cancelled()
    assert seen == ["Cancelled"]
    run = read.flow_runs()[0]
    assert run.state_type == "CANCELLED"
    names = sorted((t.name, t.state_name) for t in read.task_runs(run.id))
    assert names == [("ok-0", "Completed"), ("ok-1", "Cancelled")]


def test_flow_timeout(read: Any) -> None:
    @flow(timeout_seconds=0.2)
    def slow() -> None:
        threading.Event().wait(5)

    state = slow(return_state=True)
    assert (state.type, state.name) == (StateType.FAILED, "TimedOut")
    with pytest.raises(FlowTimeoutError):
        state.result()
    assert read.flow_runs()[0].state_name == "TimedOut"


def test_run_context_and_runtime() -> None:
    @task
    def inside() -> tuple[Any, ...]:
        return runtime.task_run.name, runtime.task_run.run_count, runtime.flow_run.name

    @flow(flow_run_name="run-{n}")
    def named(n: int) -> Any:
        ctx = get_run_context()
        assert isinstance(runtime.flow_run.scheduled_start_time, dt.datetime)
        assert runtime.flow_run.id == str(ctx.flow_run_id)  # type: ignore[union-attr]
        return ctx.flow_run_name, runtime.flow_run.parameters, inside()  # type: ignore[union-attr]

    name, params, inner = named(5)
    assert name == "run-5"
    assert params == {"n": 5}
    assert inner == ("inside-0", 1, "run-5")
    with pytest.raises(RuntimeError):
        get_run_context()


def test_async_flows_and_tasks(read: Any) -> None:
    @task
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    @flow
    async def async_flow(n: int) -> list[int]:
        direct = await double(n)
        gathered = await asyncio.gather(double(1), double(2))
        submitted = double.submit(10).result()
        return [direct, *gathered, submitted, ok(7)]

    assert async_flow(3) == [6, 2, 4, 20, 7]  # called from sync code: run in an event loop

    async def main() -> list[int]:
        return await async_flow(1)

    assert asyncio.run(main()) == [2, 2, 4, 20, 7]  # inside a loop: awaitable
    assert double(4) == 8  # an async task outside any flow or loop just runs
    for run in read.flow_runs():
        assert run.state_name == "Completed"
        assert len(read.task_runs(run.id)) == 5


def test_failed_state_result_of_manual_failure() -> None:
    @flow
    def returns_failed() -> State:
        return Failed(message="by hand")

    state = returns_failed(return_state=True)
    assert state.is_failed()
    assert state.message == "by hand"


def test_engine_obeys_wait(read: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Proposing ``Retrying`` before the retry's scheduled time makes the server answer WAIT; the engine waits."""
    from orch._engine import flow_engine

    monkeypatch.setattr(flow_engine, "_retry_delay", lambda state: 0.0)  # propose too early on purpose
    answers: list[str] = []
    original = flow_engine.FlowRunEngine.propose_once

    def spy(self: Any, state: State) -> Any:
        result = original(self, state)
        answers.append("WAIT" if result[0] is None else result[0].name)
        return result

    monkeypatch.setattr(flow_engine.FlowRunEngine, "propose_once", spy)
    calls: list[int] = []

    @flow(retries=1, retry_delay_seconds=2)
    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("once")
        return "ok"

    assert flaky() == "ok"
    assert answers[:3] == ["AwaitingRetry", "WAIT", "Retrying"]
    history = read.flow_run_states(read.flow_runs()[0].id)
    # The server's tolerance for clock skew lets a run start up to 1 s before its scheduled time.
    assert history[2].timestamp >= history[1].state_details.scheduled_time - dt.timedelta(seconds=1)


def test_engine_stops_on_abort(read: Any) -> None:
    """A run cancelled while it waits for its retry is aborted by the server when it tries to run again."""
    from orch.control_plane.schemas.states import StateCreate
    from orch.exceptions import FlowRunAborted

    def cancel_when_awaiting_retry() -> None:
        for _ in range(200):
            runs = read.flow_runs()
            if runs and runs[0].state_name == "AwaitingRetry":
                read.client.set_flow_run_state(runs[0].id, StateCreate(type="CANCELLING"))
                return
            threading.Event().wait(0.05)

    @flow(retries=1, retry_delay_seconds=3)
    def doomed() -> None:
        threading.Thread(target=cancel_when_awaiting_retry).start()
        raise RuntimeError("fails, then gets cancelled")

    with pytest.raises(FlowRunAborted):
        doomed()
    assert read.flow_runs()[0].state_type == "CANCELLED"
