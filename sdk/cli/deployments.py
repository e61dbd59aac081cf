"""``orch deployment``: list, inspect, run, pause, resume and delete deployments (named ``FLOW/DEPLOYMENT``)."""

from __future__ import annotations

import json
from typing import Any

import typer

from orch.cli._output import JSON_OPTION, fail, print_fields, print_json, print_table

app = typer.Typer(help="Manage deployments (FLOW/DEPLOYMENT).", no_args_is_help=True)

NAME_ARG = typer.Argument(..., help="The deployment, as FLOW/DEPLOYMENT (e.g. hello/nightly).")


def _client() -> Any:
    from orch.client import get_client

    return get_client()


def _deployment(client: Any, name: str) -> Any:
    from orch.deployments._client import read_deployment_by_name

    return read_deployment_by_name(client, name)


def _schedule_text(schedule: Any) -> str:
    from orch.control_plane.scheduling.timetable import describe

    words = describe(schedule.schedule)
    return words if schedule.active else f"{words} (inactive)"


@app.command("ls")
def ls(
    flow: list[str] = typer.Option(None, "--flow", help="Only deployments of this flow (repeatable)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List deployments."""
    from orch.deployments._client import read_deployments

    body: dict[str, Any] = {"flows": {"name": {"any_": flow}}} if flow else {}
    deployments = read_deployments(_client(), body)
    if as_json:
        print_json(deployments)
        return
    print_table(
        "Deployments",
        ("name", "work queue", "infra", "schedules", "paused"),
        [
            (
                d.full_name,
                d.work_queue_name,
                d.infra_type,
                "; ".join(_schedule_text(s) for s in d.schedules) or "-",
                "yes" if d.paused else "no",
            )
            for d in deployments
        ],
    )


@app.command("inspect")
def inspect(name: str = NAME_ARG, as_json: bool = JSON_OPTION) -> None:
    """Show one deployment."""
    deployment = _deployment(_client(), name)
    if as_json:
        print_json(deployment)
        return
    bundle = deployment.code_bundle
    print_fields(
        f"Deployment {deployment.full_name}",
        [
            ("id", deployment.id),
            ("description", deployment.description),
            ("version", deployment.version),
            ("entrypoint", deployment.entrypoint),
            ("code bundle", f"{bundle.sha256[:12]} in {bundle.storage}" if bundle else None),
            ("parameters", deployment.parameters),
            ("work queue", deployment.work_queue_name),
            ("infrastructure", f"{deployment.infra_type} {json.dumps(deployment.infra_overrides)}"),
            ("tags", ", ".join(deployment.tags)),
            ("paused", deployment.paused),
            ("max lateness", f"{deployment.max_lateness:g}s" if deployment.max_lateness is not None else None),
            ("retries", deployment.retries),
            ("schedules", "\n".join(_schedule_text(s) for s in deployment.schedules) or None),
        ],
    )


def parse_params(params: list[str] | None, params_json: str | None) -> dict[str, Any]:
    """``--params-json`` then each ``--param k=v`` on top; a value is JSON when it parses (``n=3`` is 3), else text."""
    out: dict[str, Any] = {}
    if params_json:
        try:
            loaded = json.loads(params_json)
        except json.JSONDecodeError as exc:
            fail(f"--params-json is not valid JSON: {exc.msg} at position {exc.pos}.")
        if not isinstance(loaded, dict):
            fail('--params-json must be a JSON object such as \'{"who": "x"}\'.')
        out.update(loaded)
    for item in params or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            fail(f"--param {item!r} must look like NAME=VALUE.")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


@app.command("run")
def run(
    name: str = NAME_ARG,
    param: list[str] = typer.Option(None, "--param", "-p", help="A parameter NAME=VALUE (JSON if it parses)."),
    params_json: str = typer.Option(None, "--params-json", help="Parameters as one JSON object."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a run of the deployment, Scheduled now; an agent on its work queue starts it."""
    from orch.deployments._client import create_flow_run_from_deployment

    parameters = parse_params(param, params_json)
    client = _client()
    deployment = _deployment(client, name)
    flow_run = create_flow_run_from_deployment(client, deployment.id, {"parameters": parameters})
    if as_json:
        print_json(flow_run)
        return
    typer.echo(f"Created flow run {flow_run.name} ({flow_run.id}) of {deployment.full_name}.")
    typer.echo(f"State: {flow_run.state_name}; work queue: {flow_run.work_queue_name or '-'}")


@app.command("upcoming")
def upcoming(
    name: str = NAME_ARG,
    n: int = typer.Option(10, "--n", "-n", min=1, max=1000, help="How many times to show."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The next times the deployment's schedules fire."""
    from orch.deployments._client import upcoming as read_upcoming

    client = _client()
    deployment = _deployment(client, name)
    times = read_upcoming(client, deployment.id, n)
    if as_json:
        print_json(times)
        return
    words = {s.id: _schedule_text(s) for s in deployment.schedules}
    print_table(
        f"Upcoming runs of {deployment.full_name}" + (" (paused)" if deployment.paused else ""),
        ("time", "UTC", "schedule"),
        [(t.scheduled_time, t.scheduled_time.isoformat(), words.get(t.schedule_id, t.schedule_id)) for t in times],
    )


def _set_paused(name: str, paused: bool) -> None:
    from orch.deployments._client import set_paused

    client = _client()
    deployment = _deployment(client, name)
    set_paused(client, deployment.id, paused)
    typer.echo(f"Deployment {deployment.full_name} {'paused' if paused else 'resumed'}.")


@app.command("pause")
def pause(name: str = NAME_ARG) -> None:
    """Stop scheduling runs (runs created ahead are removed)."""
    _set_paused(name, True)


@app.command("resume")
def resume(name: str = NAME_ARG) -> None:
    """Schedule runs again."""
    _set_paused(name, False)


@app.command("delete")
def delete(
    name: str = NAME_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete the deployment, its schedules and its runs that have not started."""
    from orch.deployments._client import delete_deployment

    client = _client()
    deployment = _deployment(client, name)
    if not yes and not typer.confirm(f"Delete deployment {deployment.full_name}?"):
        raise typer.Abort()
    delete_deployment(client, deployment.id)
    typer.echo(f"Deployment {deployment.full_name} deleted.")
