"""``orch flow-run``: list, inspect, read the logs of, cancel and delete flow runs."""

from __future__ import annotations

import uuid
from typing import Any

import typer

from orch.cli._output import JSON_OPTION, fail, fmt, print_fields, print_json, print_table, state_label

app = typer.Typer(help="Inspect and manage flow runs.", no_args_is_help=True)

# State names that are not a type's default name, by their lower-case spelling.
STATE_NAMES = {name.lower(): name for name in ("Late", "AwaitingRetry", "Retrying", "Cached", "TimedOut", "Skipped")}
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def _run_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        fail(f"{value!r} is not a flow run id (a UUID such as 0b7e8f3c-...).")
        raise  # unreachable: fail() raises


@app.command("ls")
def ls(
    state: list[str] = typer.Option(
        None, "--state", "-s", help="State type (FAILED) or name (Late); repeat for several."
    ),
    flow: list[str] = typer.Option(None, "--flow", help="Only runs of this flow (repeatable)."),
    tag: list[str] = typer.Option(None, "--tag", help="Only runs with all these tags."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000, help="How many runs to list."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List the most recent flow runs."""
    from orch.client import get_client
    from orch.control_plane.schemas.filters import FlowRunFilter
    from orch.control_plane.schemas.states import StateType

    types = [s.upper() for s in state or [] if s.upper() in StateType.__members__]
    names = []
    for given in state or []:
        if given.upper() in StateType.__members__:
            continue
        canonical = STATE_NAMES.get(given.replace(" ", "").replace("-", "").lower())
        if canonical is None:
            valid = ", ".join(sorted(t.value for t in StateType))
            fail(f"Unknown state {given!r}: use a state type ({valid}) or a name such as Late or AwaitingRetry.")
        names.append(canonical)
    body: dict[str, object] = {"limit": limit, "sort": "EXPECTED_START_TIME_DESC"}
    run_filter: dict[str, object] = {}
    if types or names:
        run_filter["state"] = {
            **({"type": {"any_": types}} if types else {}),
            **({"name": {"any_": names}} if names else {}),
        }
    if tag:
        run_filter["tags"] = {"all_": tag}
    if run_filter:
        body["flow_runs"] = run_filter
    if flow:
        body["flows"] = {"name": {"any_": flow}}
    client = get_client()
    runs = client.read_flow_runs(FlowRunFilter.model_validate(body))
    if as_json:
        print_json(runs)
        return
    flow_names = {f.id: f.name for f in client.read_flows()} if runs else {}
    print_table(
        "Flow runs",
        ("id", "flow", "name", "state", "expected start", "duration"),
        [
            (
                r.id,
                flow_names.get(r.flow_id, r.flow_id),
                r.name,
                state_label(r.state_type, r.state_name),
                r.expected_start_time,
                f"{r.total_run_time:.2f}s",
            )
            for r in runs
        ],
    )


@app.command("inspect")
def inspect(run_id: str = typer.Argument(..., help="The flow run's id."), as_json: bool = JSON_OPTION) -> None:
    """Show one flow run, with its state history."""
    from orch.client import get_client

    client = get_client()
    run = client.read_flow_run(_run_id(run_id))
    if as_json:
        print_json(run)
        return
    print_fields(
        f"Flow run {run.name}",
        [
            ("id", run.id),
            ("flow id", run.flow_id),
            ("state", state_label(run.state_type, run.state_name)),
            ("message", run.state.message if run.state else None),
            ("parameters", run.parameters),
            ("tags", ", ".join(run.tags)),
            ("deployment id", run.deployment_id),
            ("work queue", run.work_queue_name),
            ("run count", run.run_count),
            ("expected start", run.expected_start_time),
            ("start", run.start_time),
            ("end", run.end_time),
            ("run time", f"{run.total_run_time:.3f}s"),
        ],
    )
    states = client.read_flow_run_states(run.id)
    print_table(
        "State history",
        ("time", "state", "message"),
        [(s.timestamp, state_label(s.type.value, s.name), s.message) for s in states],
    )


@app.command("logs")
def logs(
    run_id: str = typer.Argument(..., help="The flow run's id."),
    level: str = typer.Option("DEBUG", "--level", "-l", help="Lowest level shown: DEBUG, INFO, WARNING, ERROR."),
    limit: int = typer.Option(1000, "--limit", "-n", min=1, help="At most this many lines."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print a flow run's logs, oldest first (all of them, page by page)."""
    from orch.client import get_client
    from orch.control_plane.schemas.filters import LogFilter

    if level.upper() not in LEVELS:
        fail(f"Unknown level {level!r}: use one of {', '.join(LEVELS)}.")
    client = get_client()
    rid = _run_id(run_id)
    client.read_flow_run(rid)  # a clear 404 for an unknown run
    collected: list[Any] = []
    cursor = None
    while len(collected) < limit:
        page = client.paginate_logs(
            LogFilter.model_validate(
                {
                    "logs": {"flow_run_id": {"any_": [str(rid)]}, "level": {"ge_": LEVELS[level.upper()]}},
                    "limit": min(1000, limit - len(collected)),
                    "cursor": cursor,
                }
            )
        )
        collected.extend(page.results)
        cursor = page.next_cursor
        if cursor is None:
            break
    if as_json:
        print_json(collected)
        return
    names = {v: k for k, v in LEVELS.items()}
    for log in collected:
        typer.echo(f"{fmt(log.timestamp)} | {names.get(log.level, log.level):<8} | {log.name} - {log.message}")


@app.command("cancel")
def cancel(run_id: str = typer.Argument(..., help="The flow run's id.")) -> None:
    """Cancel a run: a run not started yet is cancelled at once; a running one is stopped by its agent."""
    from orch.client import get_client
    from orch.control_plane.schemas.states import StateCreate, StateType

    result = get_client().set_flow_run_state(_run_id(run_id), StateCreate(type=StateType.CANCELLING))
    if result.status.value != "ACCEPT":
        fail(f"Cannot cancel: {result.details.reason}")
    typer.echo(f"Flow run {run_id} is {result.state.name if result.state else 'cancelling'}.")


@app.command("delete")
def delete(run_id: str = typer.Argument(..., help="The flow run's id.")) -> None:
    """Delete a run with its task runs, states and logs."""
    from orch.client import get_client

    get_client().delete_flow_run(_run_id(run_id))
    typer.echo(f"Deleted flow run {run_id}.")


@app.command("execute")
def execute(run_id: str = typer.Argument(..., help="The flow run's id.")) -> None:
    """Run a deployment's flow run here (what agents launch: the same as `python -m orch.engine ID`)."""
    from orch.engine import execute as run_engine

    raise typer.Exit(run_engine(_run_id(run_id)))
