"""``orch flow``: the flows the control plane knows."""

from __future__ import annotations

import typer

from orch.cli._output import JSON_OPTION, print_json, print_table

app = typer.Typer(help="Inspect flows.", no_args_is_help=True)


@app.command("ls")
def ls(
    limit: int = typer.Option(100, "--limit", min=1, max=1000, help="How many flows to list."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List flows by name."""
    from orch.client import get_client
    from orch.control_plane.schemas.filters import FlowFilterRequest

    flows = get_client().read_flows(FlowFilterRequest(limit=limit))
    if as_json:
        print_json(flows)
        return
    print_table(
        "Flows", ("name", "id", "tags", "created"), [(f.name, f.id, ", ".join(f.tags), f.created) for f in flows]
    )
