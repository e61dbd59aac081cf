"""``orch deploy``: bundle the project, store the bundle, register the deployments of ``orch.yaml``."""

from __future__ import annotations

from pathlib import Path

import typer


def deploy(
    name: str = typer.Option(None, "--name", "-n", help="Deploy only this deployment of orch.yaml."),
    all_: bool = typer.Option(False, "--all", help="Deploy every deployment of orch.yaml."),
    infra: str = typer.Option(None, "--infra", help="Override the infrastructure: process, docker or ecs."),
    storage: str = typer.Option(
        None, "--storage", help="Where bundles go: a folder or s3://bucket/prefix (default $ORCH_HOME/storage)."
    ),
    directory: Path = typer.Option(Path("."), "--dir", help="The project folder (with orch.yaml)."),
) -> None:
    """Deploy the project in --dir: one deployment (--name), all of them (--all), or the only one there is."""
    from orch.cli._output import fail
    from orch.deployments import deploy_project

    if name is not None and all_:
        fail("Pass --name or --all, not both.")
    if infra is not None and infra not in ("process", "docker", "ecs"):
        fail(f"--infra must be process, docker or ecs, not {infra!r}.")
    results = deploy_project(directory, name=name, all_=all_, infra=infra, storage=storage, echo=typer.echo)
    for result in results:
        typer.echo(f"Run it with: orch deployment run {result.deployment.full_name}")


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
