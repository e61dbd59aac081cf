"""The embedded mode: the control plane's API app mounted in-process, on SQLite in ``ORCH_HOME``.

Requests still go through the real app (routing, validation, orchestration rules) — only the network is skipped.
The app runs on its own event-loop thread so that synchronous callers (the SDK's engine) can use it from any thread.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx

_lock = threading.Lock()
_apps: dict[Path, Any] = {}


def embedded_app(home: Path) -> Any:
    """The API app for ``home``, built once per process (migrating the database on first use)."""
    home = home.expanduser().resolve()
    with _lock:
        app = _apps.get(home)
        if app is None:
            from orch.control_plane.api.app import create_app
            from orch.control_plane.db import migrate
            from orch.control_plane.db.engine import get_database
            from orch.control_plane.settings import ServerSettings

            settings = ServerSettings(home=home)
            db = get_database(settings.resolved_database_url)
            migrate.ensure_up_to_date(db)
            app = create_app(settings, database=db)
            app.state.embedded = True
            _apps[home] = app
        return app


def forget_embedded_apps() -> None:
    """Drop the cached apps (``orch.testing`` uses a fresh home per test)."""
    with _lock:
        _apps.clear()


class _LoopThread:
    """One background event loop that runs in-process ASGI calls for synchronous clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="orch-embedded-api", daemon=True)
        self.thread.start()


_loop_thread: _LoopThread | None = None


def _loop() -> asyncio.AbstractEventLoop:
    global _loop_thread
    with _lock:
        if _loop_thread is None:
            _loop_thread = _LoopThread()
        return _loop_thread.loop


class EmbeddedTransport(httpx.BaseTransport):
    """A synchronous httpx transport that calls an ASGI app in-process."""

    def __init__(self, app: Any) -> None:
        self._asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self._loop = _loop()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            response = await self._asgi.handle_async_request(forwarded)
            content = await response.aread()
            return response.status_code, response.headers.raw, content

        status, headers, content = asyncio.run_coroutine_threadsafe(call(), self._loop).result()
        return httpx.Response(status, headers=headers, content=content, request=request)


def async_transport(app: Any) -> httpx.AsyncBaseTransport:
    return httpx.ASGITransport(app=app, raise_app_exceptions=False)
