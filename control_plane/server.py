"""``orch server start``: migrate the database, then serve the API (and UI) with uvicorn, services in the background."""

from __future__ import annotations

import logging

from orch.control_plane.settings import ServerSettings, get_settings

logger = logging.getLogger("orch.control_plane.server")


def prepare_database(settings: ServerSettings) -> None:
    """Apply pending migrations (creating the SQLite file on a fresh ``ORCH_HOME``)."""
    from orch.control_plane.db import migrate
    from orch.control_plane.db.engine import get_database

    migrate.ensure_up_to_date(get_database(settings.resolved_database_url))


def serve(settings: ServerSettings | None = None, *, log_level: str = "info", workers: int = 1) -> None:
    import uvicorn

    settings = settings or get_settings()
    prepare_database(settings)
    if workers > 1:
        uvicorn.run(
            "orch.control_plane.server:_app_for_worker",
            factory=True,
            host=settings.server_host,
            port=settings.server_port,
            log_level=log_level,
            workers=workers,
        )
        return
    from orch.control_plane.api.app import create_app

    app = create_app(settings, run_services=settings.services_enabled)
    uvicorn.run(app, host=settings.server_host, port=settings.server_port, log_level=log_level)


def _app_for_worker() -> object:
    """App factory for multi-worker mode; only the first worker would duplicate services, so none run them here
    and ``orch server services`` (or a single-worker server) runs them instead."""
    from orch.control_plane.api.app import create_app

    return create_app(run_services=False)
