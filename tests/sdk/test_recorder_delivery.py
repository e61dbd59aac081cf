"""The recorder against the real embedded control plane: nothing lost, nothing recorded twice.

The backend forwards every batch to the real client; to play a network that loses answers it raises after the
first batch was delivered (a small class of our own, not a mock: the control plane really stored the batch).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from orch._engine.recorder import Recorder, TaskRunInfo, fast_uuid7
from orch.exceptions import ServerUnavailable
from orch.states import State, StateType
from orch.testing import OrchTestHarness

pytestmark = pytest.mark.integration


class LosesAnswers:
    """Delivers every batch; the answers to the first ``lose`` of them never arrive."""

    def __init__(self, client: Any, lose: int) -> None:
        self.client = client
        self.lose = lose
        self.sent = 0
        self.delivered = threading.Event()

    def record_task_runs_json(self, body: bytes) -> Any:
        answer = self.client.record_task_runs_json(body)
        self.sent += 1
        self.delivered.set()
        if self.sent <= self.lose:
            raise ServerUnavailable("the answer was lost")
        return answer

    def create_logs(self, logs: list[dict[str, Any]]) -> None:
        self.client.create_logs(logs)


def test_a_batch_whose_answer_was_lost_is_recorded_once(harness: OrchTestHarness) -> None:
    backend = LosesAnswers(harness.client, lose=1)
    recorder = Recorder(lambda: backend, interval=0.02, max_backoff=0.05)
    run = TaskRunInfo(fast_uuid7(), None, "mod.t", "0", "t-0", [], {})
    run.run_count = 1
    recorder.task_run(run, [State(StateType.PENDING), State(StateType.RUNNING)])
    assert backend.delivered.wait(5)
    # While the lost batch waits to be sent again, the run finishes.
    recorder.task_run(run, [State(StateType.COMPLETED)])
    assert recorder.flush(10)
    assert backend.sent >= 2
    states = harness.client.read_task_run_states(run.id)
    assert [s.type.value for s in states] == ["PENDING", "RUNNING", "COMPLETED"]
    stored = harness.client.read_task_run(run.id)
    assert (stored.state_type, stored.state_version, stored.run_count) == ("COMPLETED", 3, 1)
    recorder.close()


def test_flows_of_many_tasks_record_every_state_once(harness: OrchTestHarness) -> None:
    from orch import flow, task

    @task
    def double(x: int) -> int:
        return 2 * x

    @flow
    def many() -> int:
        return sum(double(i) for i in range(700)) + sum(f.result() for f in [double.submit(i) for i in range(300)])

    assert many() == 2 * sum(range(700)) + 2 * sum(range(300))
    assert harness.flush()
    from orch.control_plane.schemas.filters import TaskRunFilter

    task_runs = []
    flt = TaskRunFilter.model_validate({"limit": 200})
    while True:
        page = harness.client.request("POST", "/task_runs/filter", json=flt.model_dump(mode="json"))
        task_runs.extend(page)
        if len(page) < 200:
            break
        flt = TaskRunFilter.model_validate({"limit": 200, "offset": len(task_runs)})
    assert len(task_runs) == 1000
    assert {t["state_type"] for t in task_runs} == {"COMPLETED"}
    assert {t["state_version"] for t in task_runs} == {3}
    for task_run in task_runs[::97]:
        states = harness.client.read_task_run_states(task_run["id"])
        assert [s.type.value for s in states] == ["PENDING", "RUNNING", "COMPLETED"]
