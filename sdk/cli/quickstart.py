"""``orch quickstart``: the whole system on this machine in one command.

Starts ``orch server start`` (API + UI on :4200, SQLite in ``ORCH_HOME``), deploys the example project, starts an
agent on its work queue, runs the deployment once and waits for the result, then keeps the server and agent running
until Ctrl-C (or stops them at once with ``--exit``). Every step is a real process talking HTTP, as in production.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello"


def register(root: typer.Typer) -> None:
    root.command("quickstart")(quickstart)


def quickstart(
    port: int = typer.Option(4200, "--port", help="Port of the server (reused if one already answers there)."),
    project: Path = typer.Option(EXAMPLE, "--project", help="Project folder with an orch.yaml."),
    deployment: str = typer.Option("hello/nightly", "--deployment", help="FLOW/DEPLOYMENT to run once."),
    param: list[str] = typer.Option(["who=quickstart"], "--param", "-p", help="Parameter NAME=VALUE for the run."),
    exit_after: bool = typer.Option(False, "--exit", help="Stop the server and agent once the run has finished."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for the run."),
) -> None:
    """Server + UI + agent + an example flow run, on the embedded SQLite database."""
    import httpx

    from orch.exceptions import OrchError

    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("ORCH_API_URL", "ORCH_API_KEY")}
    children: list[subprocess.Popen[bytes]] = []
    logs = Path(os.environ.get("ORCH_HOME") or Path("~/.orch").expanduser()) / "quickstart"
    logs.mkdir(parents=True, exist_ok=True)

    def step(message: str) -> None:
        typer.secho(f"==> {message}", fg="cyan", err=True)

    def spawn(name: str, *args: str, extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "orch.cli", *args],
            env={**env, **(extra or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        children.append(proc)
        return proc

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "orch.cli", *args], env={**env, "ORCH_API_URL": url}, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise OrchError(f"`orch {' '.join(args)}` failed: {(done.stderr or done.stdout).strip()}")
        return done.stdout

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/api/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        if healthy():
            step(f"a server already answers on {url}; using it")
        else:
            step(f"starting the server on {url} (log: {logs / 'server.log'})")
            server = spawn("server", "server", "start", "--port", str(port))
            deadline = time.monotonic() + 60
            while not healthy():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise OrchError(f"the server did not start; see {logs / 'server.log'}")
                time.sleep(0.2)
        step(f"deploying {project}")
        typer.echo(cli("deploy", "--all", "--dir", str(project)).strip(), err=True)
        queue = _work_queue(cli, deployment)
        step(f"starting an agent on work queue {queue!r} (log: {logs / 'agent.log'})")
        spawn("agent", "agent", "start", "--work-queue", queue, extra={"ORCH_API_URL": url})
        step(f"running {deployment}")
        params = [arg for p in param for arg in ("--param", p)]
        run = json.loads(cli("deployment", "run", deployment, *params, "--json"))
        run_id = run["id"]
        final = _wait(cli, run_id, timeout)
        typer.echo(cli("flow-run", "logs", run_id).rstrip())
        typer.secho(
            f"Run {run['name']} ({run_id}) is {final['state_name']}.",
            fg="green" if final["state_type"] == "COMPLETED" else "red",
        )
        typer.echo(f"UI: {url}    API: {url}/api/docs")
        if final["state_type"] != "COMPLETED":
            raise typer.Exit(1)
        if not exit_after:
            typer.echo("Server and agent keep running; Ctrl-C stops them.")
            signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
            while all(p.poll() is None for p in children):
                time.sleep(0.5)
    except KeyboardInterrupt:
        typer.echo("Stopping.", err=True)
    finally:
        for proc in reversed(children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in children:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _work_queue(cli: Any, deployment: str) -> str:
    info = json.loads(cli("deployment", "inspect", deployment, "--json"))
    return str(info.get("work_queue_name") or "default")


def _wait(cli: Any, run_id: str, timeout: float) -> dict[str, Any]:
    from orch.exceptions import OrchError

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        run: dict[str, Any] = json.loads(cli("flow-run", "inspect", run_id, "--json"))
        if run["state_name"] != last:
            typer.echo(f"    {run['state_name']}", err=True)
            last = run["state_name"]
        if run["state_type"] in TERMINAL:
            return run
        time.sleep(0.5)
    raise OrchError(f"the run did not finish within {timeout:.0f}s; see `orch flow-run inspect {run_id}`")
