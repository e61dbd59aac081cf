"""``orch agent``: start an agent, list the agents the control plane has heard from."""

from __future__ import annotations

import datetime as dt

import typer

from orch.cli._output import JSON_OPTION, fail, print_json, print_table

app = typer.Typer(help="Run and list agents.", no_args_is_help=True)

INFRA = ("process", "docker", "ecs")


@app.command("start")
def start(
    work_queue: list[str] = typer.Option(..., "--work-queue", "-q", help="Work queue to take runs from (repeatable)."),
    sqs: bool = typer.Option(False, "--sqs", help="Long-poll the work queues' SQS queues instead of the API."),
    infra: str = typer.Option("process", "--infra", help="Launcher: process, docker or ecs."),
    limit: int = typer.Option(None, "--limit", min=1, help="Most runs at once (default: no limit)."),
    name: str = typer.Option(None, "--name", help="Agent name shown in `orch agent ls` (default host-pid)."),
    once: bool = typer.Option(False, "--run-once", help="Stop after the first batch of runs has finished (tests)."),
) -> None:
    """Take runs off work queues, claim each exactly once and launch it. Stops cleanly on SIGTERM/Ctrl-C.

    Launcher settings come from ORCH_* variables (docs/agents.md); ORCH_AGENT_CLAIM_DELAY is a test hook only.
    """
    import logging
    import signal

    from orch.agents.agent import Agent

    if infra not in INFRA:
        fail(f"Unknown infrastructure {infra!r}: use one of {', '.join(INFRA)}.")
    # One line per event, no logger names: "2026-11-22 15:03:38 INFO    launched run 71a7dd0d-... (process 19347)".
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%Y-%m-%d %H:%M:%S"
    )
    for noisy in ("httpx", "httpcore", "botocore", "urllib3", "alembic", "docker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    agent = Agent(work_queue, sqs=sqs, infra=infra, limit=limit, name=name)

    def on_signal(signum: int, _frame: object) -> None:
        typer.echo(f"Received {signal.Signals(signum).name}: stopping (runs already launched keep running).", err=True)
        agent.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if once:
        import threading

        def stop_when_idle() -> None:
            while not agent.stopping.is_set():
                if agent.launched and not agent.active:
                    agent.stop()
                agent.stopping.wait(0.5)

        threading.Thread(target=stop_when_idle, daemon=True).start()
    agent.run()


@app.command("ls")
def ls(as_json: bool = JSON_OPTION) -> None:
    """Agents with the queues they poll and when they were last seen."""
    from orch.client import get_client

    agents = get_client().request("POST", "/agents/filter")
    if as_json:
        print_json(agents)
        return
    now = dt.datetime.now(dt.UTC)

    def ago(value: str | None) -> str:
        if not value:
            return "never"
        seconds = (now - dt.datetime.fromisoformat(value.replace("Z", "+00:00"))).total_seconds()
        return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"

    print_table(
        "Agents",
        ("name", "status", "work queues", "infra", "host", "last seen"),
        [
            (a["name"], a["status"], ", ".join(a["work_queues"]), a["infra_type"], a["hostname"], ago(a["last_seen"]))
            for a in agents
        ],
    )
