"""Deployments against ``orch server start`` as a real process: deploying over HTTP, the services loop creating the
scheduled runs, and — with ``ORCH_SCHEDULE_BACKEND=eventbridge`` against a moto server — the EventBridge mirror.

These tests wait for the server's background loop (polling with a deadline): that loop is what is under test.
The schedule logic itself is tested with a controllable clock in test_scheduler.py.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, ServerProcess, free_port, orch_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _project(tmp_path: Path, cron: str) -> Path:
    dest = tmp_path / "hello"
    shutil.copytree(REPO_ROOT / "examples" / "hello", dest, ignore=shutil.ignore_patterns("__pycache__"))
    text = (dest / "orch.yaml").read_text().replace('cron: "0 2 * * *"', f'cron: "{cron}"')
    (dest / "orch.yaml").write_text(text)
    return dest


def _client_for(url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from orch.client import OrchClient, reset_clients
    from orch.settings import clear_settings_cache, get_settings

    monkeypatch.setenv("ORCH_API_URL", url)
    clear_settings_cache()
    reset_clients()
    return OrchClient(get_settings())


def _wait_for(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_deploy_over_http_and_the_server_schedules_runs(
    server_process: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orch.control_plane.schemas.filters import FlowRunFilter
    from orch.deployments import deploy_project

    client = _client_for(server_process.url, monkeypatch)
    (result,) = deploy_project(_project(tmp_path, "* * * * *"), storage=str(tmp_path / "bundles"), client=client)
    deployment = result.deployment
    assert deployment.full_name == "hello/nightly"

    def scheduled() -> list[Any]:
        flt = FlowRunFilter.model_validate({"flow_runs": {"deployment_id": {"any_": [str(deployment.id)]}}})
        return client.read_flow_runs(flt)

    runs = _wait_for(lambda: len(scheduled()) >= 60 and scheduled())
    assert runs, "the server's scheduler created no runs"
    # Every minute of the next hour (the default horizon), each once, all Scheduled, tagged auto-scheduled.
    times = sorted(r.expected_start_time for r in runs)
    assert len(set(times)) == len(times)
    assert all(t.second == 0 for t in times)
    assert all(r.state_type == "SCHEDULED" and "auto-scheduled" in r.tags for r in runs)
    client.close()


@pytest.mark.aws
def test_eventbridge_backend_in_the_server(
    moto: Any, orch_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.plugins.aws import aws_environment

    env = orch_env(
        orch_home,
        ORCH_SCHEDULE_BACKEND="eventbridge",
        ORCH_SCHEDULER_TARGET_ARN="arn:aws:lambda:us-east-1:123456789012:function:orch-schedule",
        ORCH_SCHEDULER_ROLE_ARN="arn:aws:iam::123456789012:role/orch-scheduler",
        **aws_environment(moto.endpoint_url),
    )
    server = ServerProcess(env, free_port(), tmp_path / "server.log")
    try:
        server.wait_ready()
        from orch.deployments import deploy_project
        from orch.deployments._client import set_paused

        client = _client_for(server.url, monkeypatch)
        (result,) = deploy_project(_project(tmp_path, "*/15 * * * *"), storage=str(tmp_path / "b"), client=client)
        scheduler = moto.client("scheduler")
        (listed,) = scheduler.list_schedules(GroupName="orch")["Schedules"]
        got = scheduler.get_schedule(Name=listed["Name"], GroupName="orch")
        assert got["ScheduleExpression"] == "cron(0/15 * * * ? *)"
        assert got["State"] == "ENABLED"
        set_paused(client, result.deployment.id, True)
        assert scheduler.get_schedule(Name=listed["Name"], GroupName="orch")["State"] == "DISABLED"
        client.request("DELETE", f"/deployments/{result.deployment.id}")
        assert scheduler.list_schedules(GroupName="orch")["Schedules"] == []
        client.close()
    finally:
        server.stop()
