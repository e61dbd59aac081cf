"""The embedded mode: the control plane's API app mounted in-process, on SQLite in ``ORCH_HOME``.

Requests still go through the real app (routing, validation, orchestration rules) — only the network is skipped.
The app runs on its own event-loop thread so that synchronous callers (the SDK's engine) can use it from any thread.
"""

from __future__ import annotations

import asyncio
import re
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
    """One background event loop that runs in-process ASGI calls for synchronous clients.

    The loop runs one endless root task (``run_until_complete``) rather than ``run_forever``: AnyIO (under
    Starlette's ``run_in_threadpool``) ties its worker threads to the loop's root task, which it recognises by
    ``run_until_complete``'s callback; without one, each request's own task counted as the root, and every request
    that used the thread pool started a new worker thread and stopped it when the request ended (~0.5 ms each)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="orch-embedded-api", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.loop.run_until_complete(self._root())

    async def _root(self) -> None:
        # Never completes: the thread is a daemon and ends with the process.
        await self.loop.create_future()


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


_CLIENT_ADDRESS = ("127.0.0.1", 123)  # what httpx's ASGI transport reports as the caller
# A path that needs no escaping (what the API's paths are made of: segments, ids).
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/_.~-]*")


class EmbeddedCaller:
    """Calls the app in-process from synchronous code, for ``OrchClient`` in the embedded mode: the same ASGI call
    as ``EmbeddedTransport`` (the app sees the same request), without httpx's client machinery around it (request
    and response objects built twice, auth and redirect flows, header merging), which cost ~850k instructions on
    the caller's thread per request, five times the app's own work for a small request. The SDK's recorder sends a
    task-run batch at the end of every flow run, so that overhead landed on every short flow."""

    def __init__(self, app: Any, base_url: str, headers: dict[str, str]) -> None:
        self._app = app
        self._loop = _loop()
        self._base = base_url
        url = httpx.URL(base_url)
        self._scheme = url.scheme
        self._base_path = url.path.rstrip("/")
        self._server = (url.host, url.port)
        self._headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        self._headers.append((b"host", url.netloc))

    def request(
        self, method: str, path: str, params: dict[str, Any] | None, body: bytes | None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, headers and body of ``method`` ``path`` (relative to the base URL) with ``params`` and a JSON
        ``body``."""
        if params or not _PLAIN_PATH.fullmatch(path):
            # Query parameters or characters to escape: httpx builds exactly what its transport would send.
            url = httpx.URL(self._base + path, params=params)
            scheme, full, raw, query = url.scheme, url.path, url.raw_path.split(b"?")[0], url.query
        else:  # the usual request (an id in the path, no query): parsing a URL would cost more than the call
            scheme, full, query = self._scheme, self._base_path + path, b""
            raw = full.encode("ascii")
        headers = list(self._headers)
        if body is not None:
            headers.append((b"content-type", b"application/json"))
            headers.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "headers": headers,
            "scheme": scheme,
            "path": full,
            "raw_path": raw,
            "query_string": query,
            "server": self._server,
            "client": _CLIENT_ADDRESS,
            "root_path": "",
        }
        return asyncio.run_coroutine_threadsafe(self._call(scope, body or b""), self._loop).result()

    async def _call(self, scope: dict[str, Any], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        done = asyncio.Event()
        received = False
        status: int | None = None
        headers: list[tuple[bytes, bytes]] = []
        parts: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal received
            if received:
                await done.wait()
                return {"type": "http.disconnect"}
            received = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                if chunk and scope["method"] != "HEAD":
                    parts.append(chunk)
                if not message.get("more_body", False):
                    done.set()

        try:
            await self._app(scope, receive, send)
        except Exception:
            # As httpx's transport with ``raise_app_exceptions=False``: the app's error handler has answered 500
            # (and logged the error); a failure before any answer is a bare 500.
            done.set()
            if status is None:
                return 500, [], b""
        return status or 500, headers, b"".join(parts)


def async_transport(app: Any) -> httpx.AsyncBaseTransport:
    return httpx.ASGITransport(app=app, raise_app_exceptions=False)
