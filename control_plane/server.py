"""``orch server start``: migrate the database, then serve the API (and UI) with uvicorn, services in the background.

uvicorn serves HTTP with its httptools protocol, extended here so that a response goes out in one write
(``OneWriteHttpProtocol``): uvicorn writes the status line and headers when the app starts the response and the
body when it sends it, so every response was two ``write`` calls, two TCP segments, and two wake-ups of the client.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any, cast

from orch.control_plane.settings import ServerSettings, get_settings

logger = logging.getLogger("orch.control_plane.server")


def prepare_database(settings: ServerSettings) -> None:
    """Apply pending migrations (creating the SQLite file on a fresh ``ORCH_HOME``)."""
    from orch.control_plane.db import migrate
    from orch.control_plane.db.engine import get_database

    migrate.ensure_up_to_date(get_database(settings.resolved_database_url))


def serve(settings: ServerSettings | None = None, *, log_level: str = "info") -> None:
    """Migrate, then serve until SIGTERM/SIGINT; a graceful stop exits with status 0."""
    from orch.control_plane.api.app import create_app

    settings = settings or get_settings()
    prepare_database(settings)
    if settings.server_workers > 1:
        _serve_workers(settings, log_level=log_level)
        return
    app = create_app(settings, run_services=settings.services_enabled)
    settle_garbage_collector()
    _graceful_server(uvicorn_config(app, settings, log_level=log_level)).run()


def uvicorn_config(app: Any, settings: ServerSettings, *, log_level: str, **options: Any) -> Any:
    """uvicorn's configuration for serving ``app`` (the app, or an import string with ``options``)."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=settings.server_host,
        port=settings.server_port,
        log_level=log_level,
        http=HTTP_PROTOCOL,
        **options,
    )


def worker_app() -> Any:
    """The app of one worker process (``--workers N``): the API and UI, never the services loop."""
    from orch.control_plane.api.app import create_app

    app = create_app(get_settings(), run_services=False)
    settle_garbage_collector()
    return app


def settle_garbage_collector() -> None:
    """Once the app is built, move everything alive into the collector's permanent generation (``gc.freeze``).

    A worker holds ~134,000 tracked objects once its app is built (modules, classes, the app, SQLAlchemy and
    pydantic machinery) that live as long as it does, and every full collection walked all of them: 65-120 ms at a
    time on this project's reference machine, a stall for every request in flight, every few thousand requests.
    Frozen, they are never walked again (full collections walk only what was made since).
    Garbage made later is collected as before; only cycles among the objects frozen here, which are meant to live
    as long as the process, would never be.
    """
    import gc

    gc.collect()
    gc.freeze()


def _serve_workers(settings: ServerSettings, *, log_level: str) -> None:
    """Serve with N worker processes on one port; the parent supervises them and runs the services loop, so that
    the scheduler and the other services run exactly once however many workers there are.

    Workers are spawned processes that build their settings from the environment, so the settings given on the
    command line are handed down as ``ORCH_*`` variables. Each worker listens on its own ``SO_REUSEPORT`` socket
    (``_WorkerSocket``) where the platform has it, else they share the parent's.
    """
    import os

    from uvicorn.supervisors import Multiprocess

    # The host matters to the workers' app itself: a non-loopback bind turns authentication on.
    for name in ("server_host", "server_port", "database_url"):
        value = getattr(settings, name)
        if value is not None:
            os.environ[f"ORCH_{name.upper()}"] = str(value)
    config = uvicorn_config(
        "orch.control_plane.server:worker_app",
        settings,
        log_level=log_level,
        factory=True,
        workers=settings.server_workers,
    )
    host, port = settings.server_host, settings.server_port
    with contextlib.ExitStack() as stack:
        if hasattr(socket, "SO_REUSEPORT"):
            stack.enter_context(_reserve_port(host, port))
            listener = cast(socket.socket, _WorkerSocket(host, port))
        else:
            listener = config.bind_socket()
        stop = threading.Event()
        services = threading.Thread(target=_run_services, args=(settings, stop), name="orch-services", daemon=True)
        if settings.services_enabled:
            services.start()
        try:
            Multiprocess(config, sockets=[listener]).run()
        finally:
            stop.set()
            if services.is_alive():
                services.join(timeout=30)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


@contextlib.contextmanager
def _reserve_port(host: str, port: int) -> Iterator[None]:
    """Hold the port in the parent while the workers run: bound with ``SO_REUSEPORT`` but never listening, so it
    takes no connections. A port something already listens on is refused here, in one line (exit 2), before any
    worker starts: first with a plain bind, which fails even against another server's ``SO_REUSEPORT`` group (a
    second ``orch server start --workers`` on the same port would otherwise silently take half its connections).
    """
    try:
        with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
        sock = _reuse_port_socket(host, port)
    except OSError as exc:
        print(f"orch server: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        logging.getLogger("uvicorn.error").info("Uvicorn workers listening on http://%s:%d", host, port)
        yield
    finally:
        sock.close()


class _WorkerSocket:
    """What the parent hands each worker instead of one shared listening socket: unpickled in the worker, it is
    that worker's own socket, bound to the same address with ``SO_REUSEPORT``.

    With one shared socket, the first worker to wake accepts every pending connection in one go (the event loop
    accepts until the backlog is empty): 16 clients connecting at once all landed on one worker, whose single core
    was then the server's limit while the other worker idled. With a socket per worker the kernel spreads new
    connections over the workers' sockets, and a worker that dies takes its own socket (and queue) with it. The
    kernel lets only sockets of the same user join a port's group.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return _reuse_port_socket, (self.host, self.port)


# uvicorn imports the protocol by name (in each worker too); the class is built on first access (``__getattr__``
# below), so that importing this module does not import uvicorn.
HTTP_PROTOCOL = "orch.control_plane.server:OneWriteHttpProtocol"


def __getattr__(name: str) -> Any:
    if name == "OneWriteHttpProtocol":
        cls = _one_write_protocol_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _one_write_protocol_class() -> type:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class OneWriteHttpProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, whose response cycles write through a ``_HeldHead``: the status line and
        headers go out with the start of the body, in one write (see ``_HeldHead`` for when they go out alone)."""

        def on_headers_complete(self) -> None:
            previous = self.cycle
            super().on_headers_complete()
            if self.cycle is not previous:  # a new request's cycle (an upgrade to WebSocket makes none)
                _HeldHead.install(self.cycle, self.transport, self.loop)

    return OneWriteHttpProtocol


class _HeldHead:
    """The transport as one request's response cycle sees it: the cycle's first write (the status line and
    headers, which uvicorn writes at ``http.response.start``) is held and joined to its next write (the body, or
    its first chunk), so that a response sent in one piece is one ``write``.

    Held bytes never wait past the current turn of the event loop, so holding them is always safe: a streaming
    response whose first chunk comes later has its headers sent on their own at the end of this turn, as before;
    they also go out before a close (an app that fails mid-response) and when the response completes without a
    body write (``HEAD``, an empty ``204``). The one write that may come before the headers, an interim
    ``100 Continue``, is then the one held, until the end of the turn.

    Nothing here refers back to the cycle, so a finished request leaves no reference cycle for the garbage
    collector.
    """

    __slots__ = ("_first", "_head", "_loop", "_on_response", "_transport")

    def __init__(self, transport: Any, on_response: Any, loop: Any) -> None:
        self._transport = transport
        self._loop = loop
        self._on_response = on_response
        self._head: bytes | None = None
        self._first = True

    @classmethod
    def install(cls, cycle: Any, transport: Any, loop: Any) -> None:
        held = cls(transport, cycle.on_response, loop)
        cycle.transport = held
        cycle.on_response = held.response_complete

    def write(self, data: bytes) -> None:
        if self._first:
            self._first = False
            self._head = data
            self._loop.call_soon(self.flush)
            return
        head = self._head
        if head is not None:
            self._head = None
            data = head + data
        self._transport.write(data)

    def flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if not self._transport.is_closing():  # the client went away: nothing to send it to
                self._transport.write(head)

    def response_complete(self) -> None:
        self.flush()
        self._on_response()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return bool(self._transport.is_closing())

    def __getattr__(self, name: str) -> Any:
        # Anything else a cycle may ask of its transport (uvicorn asks only the three above today).
        return getattr(self._transport, name)


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
