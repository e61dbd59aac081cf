"""Against a real ``orch server start`` process over HTTP: recording, and a server that goes away mid-run."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from orch import flow, get_run_logger, task
from tests.conftest import ServerProcess, free_port, orch_env

pytestmark = pytest.mark.integration

ENGINE_LINES = ("Beginning flow run", "Finished in state")


def _use_server(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    from orch import client, settings

    monkeypatch.setenv("ORCH_API_URL", url)
    settings.clear_settings_cache()
    client.reset_clients()


def test_flow_run_over_http_survives_the_server_going_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read: Any
) -> None:
    home = tmp_path / "server-home"
    home.mkdir()
    port = free_port()
    env = orch_env(home)
    server = ServerProcess(env, port, tmp_path / "server-1.log")
    server.wait_ready()
    restarted: list[ServerProcess] = []
    _use_server(monkeypatch, server.url)
    server_down = threading.Event()

    @task
    def step(i: int) -> int:
        get_run_logger().info("step %s", i)
        return i

    @task
    def stop_server() -> None:
        server.stop()
        server_down.set()

    @task
    def start_server() -> None:
        # The tasks in between ran while nobody listened; their records waited in the recorder's buffer.
        again = ServerProcess(env, port, tmp_path / "server-2.log")
        again.wait_ready()
        restarted.append(again)

    @flow
    def resilient() -> int:
        total = step(1)
        stop_server()
        total += sum(step(i) for i in range(2, 5))
        start_server()
        return total

    try:
        assert resilient() == 10
        assert server_down.is_set()
        assert read.harness.flush(30)
        runs = read.flow_runs()
        assert [r.state_name for r in runs] == ["Completed"]
        names = sorted((t.name, t.state_name) for t in read.task_runs(runs[0].id))
        assert names == [
            ("start_server-0", "Completed"),
            ("step-0", "Completed"),
            ("step-1", "Completed"),
            ("step-2", "Completed"),
            ("step-3", "Completed"),
            ("stop_server-0", "Completed"),
        ]
        messages = sorted(log.message for log in read.logs(runs[0].id) if not log.message.startswith(ENGINE_LINES))
        assert messages == ["step 1", "step 2", "step 3", "step 4"]
        assert os.environ["ORCH_API_URL"] == server.url
    finally:
        for proc in restarted:
            proc.stop()
        server.stop()
