"""The process launcher through a real agent process and a real ``orch server start``: cancellation kills the
engine's process (Cancelling → kill → Cancelled), and SIGTERM stops the agent but not the runs it launched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.agents.helpers import AgentProcess, client_for, create_runs, deploy, executions, wait_for, write_project
from tests.conftest import ServerProcess, orch_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _state(client: Any, run_id: str) -> str:
    return str(client.read_flow_run(run_id).state_type)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cancel_kills_the_engine_process_and_sigterm_leaves_launched_runs_running(
    server_process: ServerProcess, orch_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_for(server_process.url, monkeypatch)
    markers = tmp_path / "markers"
    deployment = deploy(client, write_project(tmp_path / "project", markers), tmp_path / "bundles")
    # The engines inherit the agent's environment: heartbeat every second.
    env = orch_env(orch_home, ORCH_API_URL=server_process.url, ORCH_HEARTBEAT_INTERVAL="1")
    with AgentProcess(["-q", "default", "--name", "canceller"], env, tmp_path / "agent.log") as agent:
        # 1. Cancel a running run: the agent kills its engine process and records Cancelled.
        (slow,) = create_runs(client, deployment.id, 1, parameters={"sleep": 120})
        assert wait_for(lambda: _state(client, slow) == "RUNNING", 60), agent.text()
        pid = int(client.read_flow_run(slow).infrastructure_pid)
        assert _alive(pid)
        # The engine the agent launched sends heartbeats while the flow runs.
        beats: set[Any] = set()

        def two_heartbeats() -> bool:
            beats.add(client.read_flow_run(slow).heartbeat_time)
            return len(beats - {None}) >= 2

        assert wait_for(two_heartbeats, 30), agent.text()
        cancel = subprocess.run(
            [sys.executable, "-m", "orch.cli", "flow-run", "cancel", slow],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert cancel.returncode == 0, cancel.stderr
        assert wait_for(lambda: _state(client, slow) == "CANCELLED", 60), agent.text()
        assert "canceller stopped its infrastructure" in client.read_flow_run(slow).state.message
        assert [s.type.value for s in client.read_flow_run_states(slow)][-2:] == ["CANCELLING", "CANCELLED"]
        assert wait_for(lambda: not _alive(pid), 30)
        assert not (markers / f"{slow}.end").exists()  # killed in its sleep, not finished

        # 2. SIGTERM while a run is running: the agent exits 0 and OFFLINE; the run finishes on its own.
        (running,) = create_runs(client, deployment.id, 1, parameters={"sleep": 4})
        assert wait_for(lambda: _state(client, running) == "RUNNING", 60), agent.text()
        assert agent.terminate() == 0
        assert "1 still running" in agent.text()
    assert wait_for(lambda: _state(client, running) == "COMPLETED", 60), agent.text()
    assert (markers / f"{running}.end").exists()
    assert executions(markers) == {slow: 1, running: 1}
    (seen,) = client.request("POST", "/agents/filter")
    assert (seen["name"], seen["status"]) == ("canceller", "OFFLINE")
    client.close()
