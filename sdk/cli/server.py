"""``orch server``: run the control plane (API, UI, services) on one port, run its services once, and make the
first admin API key for its database (``bootstrap-key``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from orch.control_plane.settings import ServerSettings

app = typer.Typer(help="Run the control plane.", no_args_is_help=True)


@app.command("start")
def start(
    host: str = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1, or ORCH_SERVER_HOST)."),
    port: int = typer.Option(None, "--port", help="Port to listen on (default 4200, or ORCH_SERVER_PORT).", min=1),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level."),
    services: bool | None = typer.Option(
        None, "--services/--no-services", help="Run the background services loop (default: ORCH_SERVICES_ENABLED, on)."
    ),
    workers: int = typer.Option(
        None, "--workers", help="API worker processes (default 1, or ORCH_SERVER_WORKERS).", min=1, max=64
    ),
) -> None:
    """Start the API and UI under uvicorn, migrating the database first."""
    from orch.control_plane.server import serve

    overrides: dict[str, object] = {}
    if services is not None:
        overrides["services_enabled"] = services
    if host is not None:
        overrides["server_host"] = host
    if port is not None:
        overrides["server_port"] = port
    if workers is not None:
        overrides["server_workers"] = workers
    settings = _server_settings(overrides)
    where = settings.database_url.split("@")[-1] if settings.database_url else str(settings.sqlite_path)
    typer.echo(f"orch server on http://{settings.server_host}:{settings.server_port} (database: {where})", err=True)
    from orch.control_plane.settings import is_loopback

    if settings.auth == "on" or not is_loopback(settings.server_host):
        typer.echo(
            "Authentication is on: every request but /api/health and /api/version needs an API key "
            "(the first one: `orch server bootstrap-key`).",
            err=True,
        )
    serve(settings, log_level=log_level)


@app.command("services")
def services_once() -> None:
    """Run every background service once and print what each did (cron jobs, debugging)."""
    from orch.cli._output import print_json
    from orch.control_plane.db.engine import get_database
    from orch.control_plane.server import prepare_database
    from orch.control_plane.services.loop import run_once

    settings = _server_settings({})
    prepare_database(settings)
    print_json(run_once(get_database(settings.resolved_database_url), settings))


@app.command("bootstrap-key")
def bootstrap_key(
    name: str = typer.Option("admin", "--name", help="Name of the key."),
    force: bool = typer.Option(False, "--force", help="Create one even though an admin key exists."),
) -> None:
    """Create the first admin API key in the database of ORCH_DATABASE_URL / ORCH_HOME; the key is the last line."""
    from orch.control_plane.auth.bootstrap import create_bootstrap_key
    from orch.control_plane.db.engine import get_database
    from orch.control_plane.server import prepare_database

    settings = _server_settings({})
    prepare_database(settings)
    row, key = create_bootstrap_key(get_database(settings.resolved_database_url), name=name, force=force)
    where = settings.database_url.split("@")[-1] if settings.database_url else str(settings.sqlite_path)
    typer.echo(f"Created admin API key {row.prefix} ({name!r}) in {where}.", err=True)
    typer.echo("Authentication is now on for this database, also for a local server (within seconds).", err=True)
    typer.echo("Store the key now: only its hash is kept. Log in with: orch auth login --url URL --key KEY", err=True)
    typer.echo(key)


def _server_settings(overrides: dict[str, object]) -> ServerSettings:
    from pydantic import ValidationError

    from orch.control_plane.settings import ServerSettings
    from orch.exceptions import ConfigurationError

    try:
        return ServerSettings(**overrides)  # type: ignore[arg-type,unused-ignore]
    except ValidationError as exc:
        raise ConfigurationError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
