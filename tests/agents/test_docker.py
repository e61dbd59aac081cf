"""The Docker launcher end to end: a real ``orch server start``, a real agent process with ``--infra docker``, the
real ``docker`` SDK — and a fake Docker engine (``tests/agents/fake_docker.py``), because no Docker engine can run on
this machine. The fake really runs each container's command (``python -m orch.engine RUN_ID``) as a local process
with the container's environment, so the real orch engine executes the flow and reports to the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.agents.fake_docker import FakeDockerEngine
from tests.agents.helpers import AgentProcess, client_for, create_runs, deploy, executions, wait_for, write_project
from tests.conftest import ServerProcess, orch_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _state(client: Any, run_id: str) -> str:
    return str(client.read_flow_run(run_id).state_type)


def test_docker_launcher_runs_cancels_and_reports_pull_failures(
    server_process: ServerProcess, orch_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orch.client import OrchClient
    from orch.control_plane.schemas.filters import LogFilter
    from orch.control_plane.schemas.states import StateCreate, StateType

    markers = tmp_path / "markers"
    client: OrchClient = client_for(server_process.url, monkeypatch)
    project = write_project(tmp_path / "project", markers)
    overrides = {"image": "example/flows:1", "env": {"GREETING": "hi"}, "network": "flows-net"}
    deployment = deploy(client, project, tmp_path / "bundles", **overrides, volumes=["/srv/data:/data:ro"])

    with FakeDockerEngine(pullable={"example/flows:1"}) as engine:
        env = orch_env(orch_home, ORCH_API_URL=server_process.url, ORCH_DOCKER_HOST=engine.base_url)
        with AgentProcess(["-q", "default", "--infra", "docker"], env, tmp_path / "agent.log") as agent:
            # 1. A run completes in a container of the deployment's image (pulled first), its output in its logs.
            (done,) = create_runs(client, deployment.id, 1)
            assert wait_for(lambda: _state(client, done) in ("COMPLETED", "FAILED", "CRASHED"), 60), agent.text()
            assert _state(client, done) == "COMPLETED", agent.text()
            assert executions(markers) == {done: 1}
            assert ("POST", "/images/create") in engine.requests

            # The engine reports Completed before the agent reaps the container and ships its output.
            def output_shipped() -> bool:
                logs = client.read_logs(LogFilter.model_validate({"logs": {"flow_run_id": {"any_": [done]}}}))
                return any(log.message == f"marked {done}" and log.name == "orch.docker.stdout" for log in logs)

            assert wait_for(output_shipped, 30), agent.text()
            # The agent removed the container once it had the exit code and the logs.
            assert wait_for(lambda: not engine.containers, 10)

            # 2. Cancelling a running run stops its container; the run ends Cancelled.
            (slow,) = create_runs(client, deployment.id, 1, parameters={"sleep": 120})
            assert wait_for(lambda: _state(client, slow) == "RUNNING", 60), agent.text()
            (container,) = engine.containers.values()
            assert container.config["Labels"]["orch.flow-run-id"] == slow
            assert "GREETING=hi" in container.config["Env"]
            host = container.config["HostConfig"]
            assert (host["NetworkMode"], host["Binds"], host.get("AutoRemove", False)) == (
                "flows-net",
                ["/srv/data:/data:ro"],
                False,
            )
            assert not any(e.startswith("ORCH_HOME=") for e in container.config["Env"])
            client.set_flow_run_state(slow, StateCreate(type=StateType.CANCELLING))
            assert wait_for(lambda: _state(client, slow) == "CANCELLED", 60), agent.text()
            assert ("POST", f"/containers/{container.id}/stop") in engine.requests
            assert container.status == "exited"

            # 3. An image that cannot be pulled: the run is Crashed with Docker's reason.
            client.request("PATCH", f"/deployments/{deployment.id}", {"infra_overrides": {"image": "nosuch/img:2"}})
            (bad,) = create_runs(client, deployment.id, 1)
            assert wait_for(lambda: _state(client, bad) == "CRASHED", 60), agent.text()
            message = client.read_flow_run(bad).state.message
            assert "could not pull image nosuch/img:2" in message
            assert "pull access denied" in message

            # 4. A container that exits non-zero without the engine reporting (here: it cannot reach the API) makes
            # the run Crashed with the exit code.
            unreachable = {"image": "example/flows:1", "env": {"ORCH_API_URL": "http://127.0.0.1:9"}}
            client.request("PATCH", f"/deployments/{deployment.id}", {"infra_overrides": unreachable})
            (lost,) = create_runs(client, deployment.id, 1)
            assert wait_for(lambda: _state(client, lost) == "CRASHED", 90), agent.text()
            message = client.read_flow_run(lost).state.message
            assert message == "The run's infrastructure stopped: the container exited with code 3"
            assert agent.terminate() == 0
    assert executions(markers) == {done: 1, slow: 1}
    client.close()
