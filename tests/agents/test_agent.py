"""The agent process against a real ``orch server start`` (database queue, process launcher): ``--limit`` is never
exceeded, and an agent survives the control plane going away and coming back (it backs off, then carries on).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from tests.agents.helpers import (
    AgentProcess,
    client_for,
    create_runs,
    deploy,
    executions,
    interval,
    wait_for,
    write_project,
)
from tests.conftest import ServerProcess, free_port, orch_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def _finished(client: Any, run_ids: list[str]) -> bool:
    return all(str(client.read_flow_run(r).state_type) in FINAL for r in run_ids)


def test_limit_one_runs_one_at_a_time(
    server_process: ServerProcess, orch_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_for(server_process.url, monkeypatch)
    markers = tmp_path / "markers"
    deployment = deploy(client, write_project(tmp_path / "project", markers), tmp_path / "bundles")
    run_ids = create_runs(client, deployment.id, 3, parameters={"sleep": 1.5})
    env = orch_env(orch_home, ORCH_API_URL=server_process.url)
    with AgentProcess(["-q", "default", "--limit", "1"], env, tmp_path / "agent.log") as agent:
        assert wait_for(lambda: _finished(client, run_ids), 120), agent.text()
        assert agent.terminate() == 0
    assert executions(markers) == dict.fromkeys(run_ids, 1)
    spans = sorted(interval(markers, r) for r in run_ids)
    # Never two at once: each run's flow code started after the previous one's ended.
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))
    client.close()


def test_agent_survives_a_control_plane_outage(orch_home: Path, tmp_path: Path) -> None:
    from orch.client import OrchClient
    from orch.settings import Settings

    port = free_port()
    env = orch_env(orch_home)
    server = ServerProcess(env, port, tmp_path / "server-1.log")
    server.wait_ready(timeout=120)
    client = OrchClient(Settings(api_url=server.url, home=orch_home))
    markers = tmp_path / "markers"
    deployment = deploy(client, write_project(tmp_path / "project", markers), tmp_path / "bundles")
    agent_env = {**env, "ORCH_API_URL": server.url, "ORCH_AGENT_BACKOFF_MAX": "2"}
    with AgentProcess(["-q", "default", "--name", "survivor"], agent_env, tmp_path / "agent.log") as agent:
        try:
            (before,) = create_runs(client, deployment.id, 1)
            assert wait_for(lambda: _finished(client, [before]), 60), agent.text()
            server.stop()
            assert wait_for(lambda: agent.text().count("retrying in") >= 2, 30), agent.text()
            assert agent.proc.poll() is None
            server = ServerProcess(env, port, tmp_path / "server-2.log")
            server.wait_ready(timeout=120)
            (after,) = create_runs(client, deployment.id, 1)
            assert wait_for(lambda: _finished(client, [after]), 60), agent.text()
            assert str(client.read_flow_run(after).state_type) == "COMPLETED"
            assert "reachable again" in agent.text()
            assert "Traceback" not in agent.text()
            assert agent.terminate() == 0
        finally:
            server.stop()
    assert executions(markers) == {before: 1, after: 1}
    client.close()
