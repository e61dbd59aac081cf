"""Helpers for the agent tests: a tiny deployed flow that records each execution, real agent processes.

The flow ``mark`` appends a line (``time.time()`` at its first line) to ``<marker_dir>/<run id>``, so a test counts
how many times each run's code really executed, and the pick-up benchmark reads when the flow code started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.conftest import ServerProcess, free_port, orch_env

FLOW = textwrap.dedent(
    """
    import os
    import sys
    import time

    from orch import flow

    HEAVY = ("fastapi", "starlette", "sqlalchemy", "uvicorn", "alembic", "orch.control_plane.db",
             "orch.control_plane.api")


    @flow(name="mark")
    def mark(marker_dir: str, sleep: float = 0.0, fail: bool = False, modules_dir: str = "") -> str:
        started = time.time()
        run_id = os.environ["ORCH_FLOW_RUN_ID"]
        with open(os.path.join(marker_dir, run_id), "a") as out:
            out.write(f"{started!r}\\n")
        if modules_dir:
            heavy = sorted(m for m in sys.modules if m.startswith(HEAVY))
            with open(os.path.join(modules_dir, run_id), "w") as out:
                out.write("\\n".join(heavy))
        print(f"marked {run_id}", flush=True)
        if sleep:
            time.sleep(sleep)
            with open(os.path.join(marker_dir, run_id + ".end"), "w") as out:
                out.write(f"{time.time()!r}\\n")
        if fail:
            raise RuntimeError("asked to fail")
        return run_id
    """
)


def write_project(root: Path, marker_dir: Path, work_queue: str = "default", name: str = "marks") -> Path:
    """A project folder with the ``mark`` flow and an orch.yaml deploying it to ``work_queue``."""
    root.mkdir(parents=True, exist_ok=True)
    marker_dir.mkdir(parents=True, exist_ok=True)
    (root / "flows.py").write_text(FLOW)
    (root / "orch.yaml").write_text(
        textwrap.dedent(
            f"""
            deployments:
              - name: {name}
                entrypoint: flows.py:mark
                work_queue: {work_queue}
                parameters:
                  marker_dir: "{marker_dir}"
            """
        )
    )
    return root


def deploy(client: Any, project: Path, storage: Path, **overrides: Any) -> Any:
    """Deploy the project; ``overrides`` become the deployment's ``infra_overrides``."""
    from orch.deployments import deploy_project

    (result,) = deploy_project(project, storage=str(storage), client=client)
    if overrides:
        client.request("PATCH", f"/deployments/{result.deployment.id}", {"infra_overrides": overrides})
    return result.deployment


def create_runs(client: Any, deployment_id: Any, n: int, **body: Any) -> list[str]:
    from orch.deployments._client import create_flow_run_from_deployment

    return [str(create_flow_run_from_deployment(client, deployment_id, dict(body)).id) for _ in range(n)]


def executions(marker_dir: Path) -> dict[str, int]:
    """Run id -> how many times its flow code started."""
    return {p.name: len(p.read_text().splitlines()) for p in marker_dir.iterdir() if "." not in p.name}


def interval(marker_dir: Path, run_id: str) -> tuple[float, float]:
    """When a run's flow code started and (for runs with ``sleep``) ended."""
    start = float((marker_dir / run_id).read_text().split()[0])
    return start, float((marker_dir / f"{run_id}.end").read_text().split()[0])


def wait_for(check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy or ``timeout`` passes. A 503 from the server (SQLite busy
    while agents and engines write, on a loaded machine) is "not yet", not a failure of the behaviour under test."""
    from orch.exceptions import ServerUnavailable

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except ServerUnavailable:
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


TERMINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


def client_for(url: str, monkeypatch: Any) -> Any:
    from orch.client import OrchClient, reset_clients
    from orch.settings import clear_settings_cache, get_settings

    monkeypatch.setenv("ORCH_API_URL", url)
    clear_settings_cache()
    reset_clients()
    return OrchClient(get_settings())


class AgentProcess:
    """``python -m orch.cli agent start ...`` as a real process, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._file = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orch.cli", "agent", "start", *args],
            env=env,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 40.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._file.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._file.close()

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc.poll() is None:
            self.kill()


class Stack:
    """A server, a client on it, the deployed ``mark`` flow, and the environment for agents."""

    def __init__(self, server: ServerProcess, client: Any, env: dict[str, str], tmp: Path, deployment: Any) -> None:
        self.server = server
        self.client = client
        self.env = env
        self.tmp = tmp
        self.deployment = deployment
        self.markers = tmp / "markers"

    def agent(self, queue: str, name: str, *args: str, **env: str) -> AgentProcess:
        return AgentProcess(["-q", queue, "--name", name, *args], {**self.env, **env}, self.tmp / f"agent-{name}.log")

    def queue(self, name: str, **body: Any) -> str:
        """A new work queue (with its SQS queue when the server uses SQS); returns its SQS URL or ''."""
        created = self.client.request("POST", "/work_queues/", {"name": name, **body})
        return str(created.get("sqs_queue_url") or "")

    def runs(self, queue: str, n: int, **body: Any) -> list[str]:
        return create_runs(self.client, self.deployment.id, n, work_queue_name=queue, **body)

    def executions(self, run_ids: list[str]) -> dict[str, int]:
        counts = executions(self.markers)
        return {r: counts[r] for r in run_ids if r in counts}

    def states(self, run_ids: list[str]) -> dict[str, str]:
        from orch.control_plane.schemas.filters import FlowRunFilter

        out: dict[str, str] = {}
        for i in range(0, len(run_ids), 200):
            flt = FlowRunFilter.model_validate({"flow_runs": {"id": {"any_": run_ids[i : i + 200]}}, "limit": 200})
            out.update({str(r.id): str(r.state_type) for r in self.client.read_flow_runs(flt)})
        return out

    def all_finished(self, run_ids: list[str]) -> bool:
        return all(state in TERMINAL for state in self.states(run_ids).values())


def start_stack(tmp: Path, extra: dict[str, str]) -> Iterator[Stack]:
    """A server process with ``extra`` in its environment, a client on it and the deployed ``mark`` flow."""
    from orch.client import OrchClient
    from orch.settings import Settings

    home = tmp / "home"
    home.mkdir()
    env = orch_env(home, ORCH_SERVICES_INTERVAL="1", **extra)
    server = ServerProcess(env, free_port(), tmp / "server.log")
    try:
        server.wait_ready(timeout=120)
        client = OrchClient(Settings(api_url=server.url, home=home))
        project = write_project(tmp / "project", tmp / "markers")
        deployment = deploy(client, project, tmp / "bundles")
        agent_env = {**env, "ORCH_API_URL": server.url, "ORCH_AGENT_SQS_WAIT_SECONDS": "2"}
        yield Stack(server, client, agent_env, tmp, deployment)
        client.close()
    finally:
        server.stop()
