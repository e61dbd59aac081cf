"""``orch work-queue``: create, list, inspect, preview, pause, resume and delete work queues."""

from __future__ import annotations

from typing import Any

import typer

from orch.cli._output import JSON_OPTION, print_fields, print_json, print_table, state_label

app = typer.Typer(help="Manage work queues.", no_args_is_help=True)


def _queue(name: str) -> dict[str, Any]:
    from orch.client import get_client

    queue: dict[str, Any] = get_client().request("GET", f"/work_queues/name/{name}")
    return queue


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Letters, digits, '-', '_' or '.' (it names the SQS queue too)."),
    description: str = typer.Option(None, "--description", "-d"),
    priority: int = typer.Option(100, "--priority", "-p", min=1, help="Lower is served first."),
    limit: int = typer.Option(None, "--limit", "-l", min=0, help="Concurrency limit: runs at once."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a work queue (and, with the SQS run queue, its SQS queue and dead-letter queue)."""
    from orch.client import get_client

    body = {"name": name, "description": description, "priority": priority, "concurrency_limit": limit}
    queue = get_client().request("POST", "/work_queues/", {k: v for k, v in body.items() if v is not None})
    if as_json:
        print_json(queue)
    else:
        typer.echo(
            f"Created work queue {queue['name']!r}"
            + (f" ({queue['sqs_queue_url']})" if queue.get("sqs_queue_url") else "")
        )


@app.command("ls")
def ls(as_json: bool = JSON_OPTION) -> None:
    """List work queues by priority."""
    from orch.client import get_client

    queues = get_client().request("POST", "/work_queues/filter", {})
    if as_json:
        print_json(queues)
        return
    print_table(
        "Work queues",
        ("name", "priority", "limit", "paused", "last polled", "SQS"),
        [
            (q["name"], q["priority"], q["concurrency_limit"], q["paused"], q["last_polled"], q["sqs_queue_url"])
            for q in queues
        ],
    )


@app.command("inspect")
def inspect(name: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """A queue with its waiting/late/active counts, its agents and its dead letters."""
    from orch.client import get_client

    status = get_client().request("GET", f"/work_queues/{name}/status")
    if as_json:
        print_json(status)
        return
    q = status["work_queue"]
    print_fields(
        f"Work queue {q['name']}",
        [
            ("id", q["id"]),
            ("description", q["description"]),
            ("priority", q["priority"]),
            ("concurrency limit", q["concurrency_limit"]),
            ("paused", q["paused"]),
            ("waiting (due)", status["waiting"]),
            ("late", status["late"]),
            ("active", status["active"]),
            ("SQS queue", q["sqs_queue_url"]),
            ("dead-letter queue", q["sqs_dlq_url"]),
            ("dead letters", status["dead_letters"]),
            ("agents", ", ".join(a["name"] for a in status["agents"]) or "none"),
        ],
    )
    for body in status["dead_letter_samples"]:
        typer.echo(f"dead letter: {body}")


@app.command("preview")
def preview(
    name: str = typer.Argument(...),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=500),
    as_json: bool = JSON_OPTION,
) -> None:
    """The runs waiting in the queue, soonest first."""
    from orch.client import get_client

    runs = get_client().request("GET", f"/work_queues/{name}/preview", params={"limit": limit})
    if as_json:
        print_json(runs)
        return
    print_table(
        f"Runs waiting in {name}",
        ("id", "name", "state", "scheduled for"),
        [(r["id"], r["name"], state_label(r["state_type"], r["state_name"]), r["expected_start_time"]) for r in runs],
    )


def _set_paused(name: str, paused: bool) -> None:
    from orch.client import get_client

    queue = _queue(name)
    get_client().request("POST", f"/work_queues/{queue['id']}/{'pause' if paused else 'resume'}")
    typer.echo(f"Work queue {name!r} {'paused' if paused else 'resumed'}.")


@app.command("pause")
def pause(name: str = typer.Argument(...)) -> None:
    """Stop handing the queue's runs to agents."""
    _set_paused(name, True)


@app.command("resume")
def resume(name: str = typer.Argument(...)) -> None:
    """Hand the queue's runs to agents again."""
    _set_paused(name, False)


@app.command("delete")
def delete(name: str = typer.Argument(...), yes: bool = typer.Option(False, "--yes", help="Confirm.")) -> None:
    """Delete a queue (and its SQS queues). Runs keep their queue name."""
    from orch.client import get_client
    from orch.exceptions import InvalidInput

    if not yes:
        raise InvalidInput(f"Deleting work queue {name!r} also deletes its SQS queues; run again with --yes.")
    queue = _queue(name)
    get_client().request("DELETE", f"/work_queues/{queue['id']}")
    typer.echo(f"Deleted work queue {name!r}.")
