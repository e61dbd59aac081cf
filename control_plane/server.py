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
    if settings.server_workers > 1:
        _serve_workers(settings, log_level=log_level)
        return
    app = create_app(settings, run_services=settings.services_enabled)
    config = uvicorn.Config(app, host=settings.server_host, port=settings.server_port, log_level=log_level)
    _graceful_server(config).run()


def worker_app() -> Any:
    """The app of one worker process (``--workers N``): the API and UI, never the services loop."""
    from orch.control_plane.api.app import create_app

    return create_app(get_settings(), run_services=False)


def _serve_workers(settings: ServerSettings, *, log_level: str) -> None:
    """Serve with N worker processes sharing the socket; the parent supervises them and runs the services loop,
    so that the scheduler and the other services run exactly once however many workers there are.

    Workers are spawned processes that build their settings from the environment, so the settings given on the
    command line are handed down as ``ORCH_*`` variables.
    """
    import os

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    # The host matters to the workers' app itself: a non-loopback bind turns authentication on.
    for name in ("server_host", "server_port", "database_url"):
        value = getattr(settings, name)
        if value is not None:
            os.environ[f"ORCH_{name.upper()}"] = str(value)
    stop = threading.Event()
    services = threading.Thread(target=_run_services, args=(settings, stop), name="orch-services", daemon=True)
    if settings.services_enabled:
        services.start()
    try:
        config = uvicorn.Config(
            "orch.control_plane.server:worker_app",
            factory=True,
            host=settings.server_host,
            port=settings.server_port,
            workers=settings.server_workers,
            log_level=log_level,
        )
        sock = config.bind_socket()
        Multiprocess(config, sockets=[sock]).run()
    finally:
        stop.set()
        if services.is_alive():
            services.join(timeout=30)


def _run_services(settings: ServerSettings, stop: threading.Event) -> None:
    import asyncio

    from orch.control_plane.db.engine import get_database
    from orch.control_plane.services.loop import start_services

    async def main() -> None:
        stop_services = await start_services(get_database(settings.resolved_database_url), settings)
        await asyncio.to_thread(stop.wait)
        await stop_services()

    asyncio.run(main())


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
