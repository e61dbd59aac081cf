"""The README's example end to end, with the commands a user types: ``orch deploy`` of ``examples/hello``,
``orch work-queue create default``, ``orch agent start --work-queue default`` and ``orch deployment run
hello/nightly`` — against a real ``orch server start``, on the database queue and on SQS (the moto server on
loopback), the process launcher starting the engine as a real subprocess.

Every ``orch`` command is a real process; the test reads the outcome through ``orch flow-run inspect --json`` and
``orch flow-run logs``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents.helpers import AgentProcess, wait_for
from tests.conftest import REPO_ROOT, ServerProcess, free_port, orch_env
from tests.plugins.aws import aws_environment

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(params=["database", pytest.param("sqs", marks=pytest.mark.aws)])
def server(request: pytest.FixtureRequest, orch_home: Path, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A server on the given run queue and the environment for ``orch`` commands that talk to it."""
    extra: dict[str, str] = {}
    if request.param == "sqs":
        moto = request.getfixturevalue("moto_server")
        extra = {
            "ORCH_RUN_QUEUE": "sqs",
            "ORCH_SQS_QUEUE_PREFIX": f"r{uuid.uuid4().hex[:8]}-",
            "ORCH_AGENT_SQS_WAIT_SECONDS": "2",
            **aws_environment(moto.endpoint_url),
        }
    env = orch_env(orch_home, COLUMNS="200", **extra)
    process = ServerProcess(env, free_port(), tmp_path / "server.log")
    try:
        process.wait_ready(timeout=120)
        yield request.param, {**env, "ORCH_API_URL": process.url}
    finally:
        process.stop()


def orch(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "orch.cli", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def test_deploy_and_agent_run_the_readme_example(server: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    queue_kind, env = server
    project = tmp_path / "hello"
    shutil.copytree(REPO_ROOT / "examples" / "hello", project, ignore=shutil.ignore_patterns("__pycache__"))

    created = json.loads(orch(env, "work-queue", "create", "default", "--json"))
    assert bool(created["sqs_queue_url"]) is (queue_kind == "sqs")
    assert "deployment hello/nightly registered" in orch(env, "deploy", "--all", "--dir", str(project))
    agent_args = ["--work-queue", "default", "--name", f"readme-{queue_kind}"]
    if queue_kind == "sqs":
        agent_args.append("--sqs")
    with AgentProcess(agent_args, env, tmp_path / "agent.log") as agent:
        run: dict[str, Any] = json.loads(
            orch(env, "deployment", "run", "hello/nightly", "--param", "who=you", "--json")
        )

        def finished() -> dict[str, Any] | None:
            now: dict[str, Any] = json.loads(orch(env, "flow-run", "inspect", run["id"], "--json"))
            return now if now["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

        final = wait_for(finished, 120, 0.5)
        assert final and final["state_type"] == "COMPLETED", agent.text()[-3000:]
        assert "Hello, you." in orch(env, "flow-run", "logs", run["id"])
        # A real subprocess: the engine's pid on the run, the agent's log line about it.
        pid = final["infrastructure_pid"]
        assert pid and pid.isdigit()
        assert f"launched run {run['id']} (process {pid})" in agent.text()
        (seen,) = json.loads(orch(env, "agent", "ls", "--json"))
        assert (seen["name"], seen["status"], seen["work_queues"]) == (f"readme-{queue_kind}", "ONLINE", ["default"])
        assert agent.terminate() == 0
    status = json.loads(orch(env, "work-queue", "inspect", "default", "--json"))
    assert status["waiting"] == 0
    if queue_kind == "sqs":
        assert status["dead_letters"] == 0
