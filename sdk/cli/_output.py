"""How the CLI prints: Rich tables for people, ``--json`` for programs (the API's JSON objects and nothing else)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import typer
from pydantic import BaseModel

JSON_OPTION = typer.Option(False, "--json", help="Print the API's JSON objects instead of a table.")


def to_jsonable(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, list | tuple):
        return [to_jsonable(o) for o in obj]
    return obj


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, default=str) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[fmt(v) for v in row])
    Console().print(table)


def print_fields(title: str, fields: Sequence[tuple[str, Any]]) -> None:
    print_table(title, ("field", "value"), fields)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


STATE_COLORS = {
    "COMPLETED": "green",
    "FAILED": "red",
    "CRASHED": "bright_red",
    "CANCELLED": "grey50",
    "CANCELLING": "grey50",
    "RUNNING": "blue",
    "PENDING": "cyan",
    "SCHEDULED": "yellow",
    "PAUSED": "magenta",
}


def state_label(state_type: str | None, state_name: str | None) -> str:
    if state_type is None:
        return "-"
    color = STATE_COLORS.get(state_type, "white")
    return f"[{color}]{state_name or state_type}[/{color}]"


def fail(message: str) -> None:
    """Refuse bad input: one line on stderr, exit code 2."""
    from orch.exceptions import InvalidInput

    raise InvalidInput(message)
