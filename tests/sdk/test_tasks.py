"""Task runs inside flows: retries, timeouts, hooks, futures, mapping, upstream failures, recording."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest

from orch import allow_failure, flow, task, unmapped
from orch.futures import UpstreamTaskError, as_completed, wait
from orch.states import StateType
from orch.tasks import exponential_backoff

pytestmark = pytest.mark.unit


def test_task_retries_wait_and_rerun(read: Any) -> None:
    calls: list[int] = []

    @task(retries=2, retry_delay_seconds=[0.1, 0.2])
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError(f"attempt {len(calls)}")
        return "done"

    @flow
    def f() -> str:
        return flaky()

    state = f(return_state=True)
    assert state.result() == "done"
    assert len(calls) == 3
    [run] = read.task_runs()
    assert (run.state_name, run.run_count) == ("Completed", 3)
    history = read.task_run_states(run.id)
    assert [s.name for s in history] == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]
    for awaiting, retrying, delay in ((history[2], history[3], 0.1), (history[4], history[5], 0.2)):
        assert awaiting.message == f"ConnectionError: attempt {history.index(awaiting) // 2}"
        assert awaiting.state_details.scheduled_time >= awaiting.timestamp + dt.timedelta(seconds=delay)
        assert retrying.timestamp >= awaiting.state_details.scheduled_time  # it really waited


def test_retries_exhausted_fail_and_retry_condition_can_stop_them() -> None:
    calls: list[str] = []

    @task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=0.01))
    def always() -> None:
        calls.append("always")
        raise ValueError("x")

    @task(retries=3, retry_condition_fn=lambda t, run, state: "retriable" in (state.message or ""))
    def picky(message: str) -> None:
        calls.append(message)
        raise ValueError(message)

    @flow
    def f() -> list[Any]:
        return [always(return_state=True), picky("fatal", return_state=True), picky("retriable", return_state=True)]

    final = f(return_state=True)
    assert final.is_failed()  # it returned failed states
    assert calls.count("always") == 4
    assert calls.count("fatal") == 1
    assert calls.count("retriable") == 4


def test_timeout_stops_waiting_and_the_flow_goes_on(read: Any) -> None:
    release = threading.Event()

    @task(timeout_seconds=0.2)
    def slow() -> None:
        release.wait(10)

    @flow
    def f() -> str:
        state = slow(return_state=True)
        assert (state.type, state.name) == (StateType.FAILED, "TimedOut")
        with pytest.raises(TimeoutError):
            state.result()
        return "continued"

    assert f() == "continued"
    release.set()
    [run] = read.task_runs()
    assert run.state_name == "TimedOut"


def test_task_hooks_fire_with_task_run_and_state() -> None:
    seen: list[tuple[str, str, str]] = []

    def hook(kind: str) -> Any:
        return lambda t, run, state: seen.append((kind, run.name, state.name))

    @task(on_completion=[hook("completion")], on_failure=[hook("failure")], on_running=[hook("running")])
    def hooked(fail: bool) -> None:
        if fail:
            raise ValueError("x")

    @flow
    def f() -> None:
        hooked(False)
        hooked(True, return_state=True)

    f()
    assert seen == [
        ("running", "hooked-0", "Running"),
        ("completion", "hooked-0", "Completed"),
        ("running", "hooked-1", "Running"),
        ("failure", "hooked-1", "Failed"),
    ]


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def fail() -> int:
    raise RuntimeError("upstream broke")


def test_submit_futures_wait_and_as_completed() -> None:
    @flow
    def f() -> Any:
        futures = [add.submit(i, 1) for i in range(5)]
        done, not_done = wait(futures)
        assert len(done) == 5
        assert not not_done
        assert sorted(fut.result() for fut in as_completed(futures)) == [1, 2, 3, 4, 5]
        futures[0].wait()
        assert futures[0].state.is_completed()
        # Futures passed as arguments (also inside collections) are resolved first.
        total = add.submit(futures[0], futures[1])
        listed = task(lambda xs: sum(xs), name="summer")([futures[2], {"not": "future"}["not"] and futures[3]])
        return total.result(), listed

    assert f() == (3, 7)


def test_map_with_unmapped() -> None:
    @flow
    def f() -> list[int]:
        return [fut.result() for fut in add.map([1, 2, 3], unmapped(10))]

    assert f() == [11, 12, 13]
    with pytest.raises(ValueError, match="different lengths"):
        add.map([1, 2], [1])


def test_wait_for_and_upstream_failures(read: Any) -> None:
    order: list[str] = []

    @task
    def first() -> None:
        threading.Event().wait(0.1)
        order.append("first")

    @task
    def second() -> None:
        order.append("second")

    @flow
    def f() -> Any:
        a = first.submit()
        second.submit(wait_for=[a]).wait()
        broken = fail.submit()
        blocked = add.submit(broken, 1)
        allowed = task(lambda x: type(x).__name__, name="inspect")(allow_failure(broken))
        blocked.wait()
        assert blocked.state.is_failed()
        assert blocked.state.name == "NotReady"
        with pytest.raises(UpstreamTaskError):
            blocked.result()
        return allowed

    assert f() == "RuntimeError"
    assert order == ["first", "second"]
    names = {r.name: r for r in read.task_runs()}
    assert names["second-0"].task_inputs["wait_for"] == [{"input_type": "task_run", "id": str(names["first-0"].id)}]
    assert names["add-0"].state_name == "NotReady"


def test_return_state() -> None:
    @flow
    def f() -> Any:
        state = add(1, 2, return_state=True)
        assert state.is_completed()
        assert state.result() == 3
        return state  # a returned state becomes the flow's final state (Prefect's rule)

    assert f() == 3


def test_task_outside_a_flow_runs_and_is_recorded_without_a_flow_run(read: Any) -> None:
    assert add(2, 3) == 5
    assert add.submit(1, 1).result() == 2
    runs = read.task_runs()
    assert sorted(r.name for r in runs) == ["add-0", "add-0"]
    assert {r.flow_run_id for r in runs} == {None}


def test_async_task_timeout_and_retries(read: Any) -> None:
    import asyncio

    calls: list[int] = []

    @task(timeout_seconds=0.1, retries=1)
    async def sleepy() -> None:
        calls.append(1)
        await asyncio.sleep(5)

    @flow
    async def f() -> str:
        state = await sleepy(return_state=True)
        assert state.name == "TimedOut"
        return "went on"

    assert f() == "went on"
    assert len(calls) == 2
    [run] = read.task_runs()
    assert (run.state_name, run.run_count) == ("TimedOut", 2)
