"""Fixtures for the SDK's tests: every test runs against a throwaway embedded control plane from ``orch.testing``.

``harness`` is the user-facing ``orch_test_harness()`` itself (so the tests exercise it too); ``read`` helpers
flush the batching recorder first, then read runs, task runs and logs back through the client.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from orch.testing import OrchTestHarness, orch_test_harness


@pytest.fixture(autouse=True)
def harness(orch_home: Any) -> Iterator[OrchTestHarness]:
    with orch_test_harness() as h:
        yield h


class Reader:
    """Reads what the control plane recorded (after flushing the recorder)."""

    def __init__(self, harness: OrchTestHarness) -> None:
        self.harness = harness

    @property
    def client(self) -> Any:
        return self.harness.client

    def flow_runs(self, **fields: Any) -> list[Any]:
        from orch.control_plane.schemas.filters import FlowRunFilter

        self.harness.flush()
        return self.client.read_flow_runs(FlowRunFilter.model_validate({"flow_runs": fields} if fields else {}))

    def flow_run(self, flow_run_id: uuid.UUID | str) -> Any:
        return self.client.read_flow_run(flow_run_id)

    def task_runs(self, flow_run_id: uuid.UUID | str | None = None) -> list[Any]:
        from orch.control_plane.schemas.filters import TaskRunFilter

        assert self.harness.flush()
        body = {"task_runs": {"flow_run_id": {"any_": [str(flow_run_id)]}}} if flow_run_id else {}
        return self.client.read_task_runs(TaskRunFilter.model_validate(body))

    def task_run_states(self, task_run_id: uuid.UUID | str) -> list[Any]:
        assert self.harness.flush()
        return self.client.read_task_run_states(task_run_id)

    def flow_run_states(self, flow_run_id: uuid.UUID | str) -> list[Any]:
        return self.client.read_flow_run_states(flow_run_id)

    def logs(self, flow_run_id: uuid.UUID | str) -> list[Any]:
        from orch.control_plane.schemas.filters import LogFilter

        assert self.harness.flush()
        return self.client.read_logs(LogFilter.model_validate({"logs": {"flow_run_id": {"any_": [str(flow_run_id)]}}}))


@pytest.fixture
def read(harness: OrchTestHarness) -> Reader:
    return Reader(harness)
