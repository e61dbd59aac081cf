"""The FastAPI application: the same app serves ``orch server start``, the embedded SDK and AWS Lambda.

``create_app()`` builds it; nothing happens at import time. The server runs migrations *before* building the app
(``orch.control_plane.server``); the embedded client does the same on first use; on Lambda the first cold start
does. The background services loop runs only when asked (the server; Lambda runs services from EventBridge).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from orch.control_plane.db.engine import Database, get_database
from orch.control_plane.settings import ServerSettings, get_settings

API_PREFIX = "/api"

# Extra routers and app hooks registered by optional parts (UI, auth, deployments...): each is a callable that
# receives the app once it is built. Kept as a list so the app module does not import every feature eagerly.
APP_EXTENSIONS: list[str] = [
    "orch.control_plane.api.routes.health:router",
    "orch.control_plane.api.routes.flows:router",
    "orch.control_plane.api.routes.flow_runs:router",
    "orch.control_plane.api.routes.task_runs:router",
    "orch.control_plane.api.routes.logs:router",
]
OPTIONAL_EXTENSIONS: list[str] = [
    "orch.control_plane.api.routes.deployments:router",
    "orch.control_plane.api.routes.work_queues:router",
    "orch.control_plane.api.routes.agents:router",
    "orch.control_plane.api.routes.auth:router",
    "orch.control_plane.auth:install",
    "orch.control_plane.ui:install",
]


def create_app(
    settings: ServerSettings | None = None,
    *,
    database: Database | None = None,
    run_services: bool = False,
) -> FastAPI:
    settings = settings or get_settings()
    db = database or get_database(settings.resolved_database_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop: Callable[[], Any] | None = None
        if run_services:
            from orch.control_plane.services.loop import start_services

            stop = await start_services(app.state.database, settings)
        try:
            yield
        finally:
            if stop is not None:
                await stop()

    from orch import __version__
    from orch.control_plane.api import errors

    app = FastAPI(
        title="orch",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.database = db
    app.state.settings = settings
    errors.install(app)
    # All API routers hang under one /api router: a request to the UI does not try every API route, and an API
    # request tries only API routes.
    api = APIRouter(prefix=API_PREFIX)
    hooks = []
    routers: list[APIRouter] = []
    for target, required in [(t, True) for t in APP_EXTENSIONS] + [(t, False) for t in OPTIONAL_EXTENSIONS]:
        obj = _load(target, required=required)
        if obj is None:
            continue
        if hasattr(obj, "routes"):
            api.include_router(obj)
            routers.append(obj)
        else:
            hooks.append(obj)
    app.include_router(api)
    # Dispatch: FastAPI tries routes one after another at ~10 µs each, so a request for a route late in the list
    # paid for every route before it. Index the API by its first path segment; the routes above stay for OpenAPI.
    app.router.routes[0:0] = _segment_routes(routers)
    from orch.control_plane.api import hot

    app.router.routes[0:0] = hot.routes()

    for hook in hooks:
        hook(app)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


class _SegmentRoute(BaseRoute):
    """Every request under ``/api/<segment>`` goes straight to the routers that serve that segment."""

    def __init__(self, segment: str, routers: list[APIRouter]) -> None:
        self.prefix = f"{API_PREFIX}/{segment}"
        self.router = APIRouter()
        for router in routers:
            self.router.include_router(router, prefix=API_PREFIX)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith(self.prefix) and (len(path) == len(self.prefix) or path[len(self.prefix)] == "/"):
                return Match.FULL, {}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)


def _segment_routes(routers: list[APIRouter]) -> list[BaseRoute]:
    by_segment: dict[str, list[APIRouter]] = {}
    for router in routers:
        for route in router.routes:
            segment = getattr(route, "path", "").split("/")[1]
            if segment and router not in by_segment.setdefault(segment, []):
                by_segment[segment].append(router)
    return [_SegmentRoute(segment, members) for segment, members in by_segment.items()]


def _load(target: str, *, required: bool) -> Any:
    """The router or install hook named ``module:attribute``; None for a missing optional module."""
    import importlib

    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if required or exc.name != module_name:
            raise
        return None
    return getattr(module, attr)
