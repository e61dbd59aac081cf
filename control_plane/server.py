"""``orch server start``: migrate the database, then serve the API (and UI) with uvicorn, services in the background."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

from orch.control_plane.settings import ServerSettings, get_settings

logger = logging.getLogger("orch.control_plane.server")


def prepare_database(settings: ServerSettings) -> None:
    """Apply pending migrations (creating the SQLite file on a fresh ``ORCH_HOME``)."""
    from orch.control_plane.db import migrate
    from orch.control_plane.db.engine import get_database

    migrate.ensure_up_to_date(get_database(settings.resolved_database_url))


def serve(settings: ServerSettings | None = None, *, log_level: str = "info") -> None:
    """Migrate, then serve until SIGTERM/SIGINT; a graceful stop exits with status 0."""
    import uvicorn

    from orch.control_plane.api.app import create_app

    settings = settings or get_settings()
    prepare_database(settings)
    app = create_app(settings, run_services=settings.services_enabled)
    config = uvicorn.Config(app, host=settings.server_host, port=settings.server_port, log_level=log_level)
    _graceful_server(config).run()


def _graceful_server_class() -> type:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn's server, except that after a graceful stop on SIGTERM/SIGINT it returns instead of re-raising
        the signal (uvicorn re-raises it, so the process would end "killed by SIGTERM" after a clean shutdown)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return GracefulServer


def _graceful_server(config: object) -> Any:
    return _graceful_server_class()(config)
