"""Every API route declares a scope, and a real server bound to a public address enforces it.

The operations come from the app itself (``app.routes``, through the included routers), so a route added later is
walked without anyone touching this file; an API route that forgot ``requires(...)`` fails
``test_every_route_declares_a_scope`` and, on the live server, the 401 checks. The server runs as a real process
bound to 0.0.0.0 (reached through 127.0.0.1 only) with one key per scope.

Routes outside ``/api`` are the UI's pages, which authenticate browsers with their own session cookie; for them the
live server must refuse an anonymous visitor (a redirect to the login page, 401 or 403 — never the page), which
catches a page added later without its viewer check.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from orch.control_plane.api.security import PUBLIC, Scope, declared_scope
from tests.auth.conftest import AuthServer

pytestmark = pytest.mark.integration

LADDER = [Scope.READ, Scope.AGENT, Scope.DEPLOY, Scope.ADMIN]
# Routes that need no key at all; anything else must refuse a request without one.
PUBLIC_PATHS = {("GET", "/api/health"), ("GET", "/api/version")}
# UI pages an anonymous visitor may see.
PUBLIC_PAGES = {("GET", "/login")}


def is_api(path: str) -> bool:
    """API routes and FastAPI's docs pages (which ``auth.install`` puts behind ``read``), as opposed to UI pages."""
    return path.startswith(("/api/", "/docs/"))


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    scope: str | None
    uuid_params: frozenset[str]

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    def url(self) -> str:
        def fill(match: re.Match[str]) -> str:
            return str(uuid.uuid4()) if match.group(1) in self.uuid_params else "some-name"

        return re.sub(r"\{([^}]+)\}", fill, self.path)


def build_app() -> Any:
    from orch.control_plane.api.app import create_app
    from orch.control_plane.db.engine import Database
    from orch.control_plane.settings import ServerSettings

    return create_app(ServerSettings(server_host="127.0.0.1", auth="auto"), database=Database("sqlite://", pool="null"))


def undeclared_routes(app: Any) -> list[str]:
    from orch.control_plane.auth import api_routes

    return sorted(f"{sorted(m)} {p}" for p, m, route in api_routes(app) if is_api(p) and declared_scope(route) is None)


def operations(app: Any, *, api: bool = True) -> list[Operation]:
    """Every (method, path) the app serves under /api (or, ``api=False``, outside it), with its declared scope."""
    from orch.control_plane.auth import api_routes

    found = []
    for path, methods, route in api_routes(app):
        if is_api(path) != api:
            continue
        params = {p.name for p in route.dependant.path_params if p.field_info.annotation is uuid.UUID}
        scope = declared_scope(route)
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            found.append(Operation(method, path, str(scope) if scope is not None else None, frozenset(params)))
    return found


APP = build_app()
OPERATIONS = operations(APP)
PAGES = operations(APP, api=False)


def test_every_route_declares_a_scope() -> None:
    assert undeclared_routes(APP) == []


def test_a_route_without_requires_is_caught() -> None:
    """The check above is not vacuous: a route added without ``requires(...)`` shows up."""
    from fastapi import APIRouter

    app = build_app()
    router = APIRouter()

    @router.get("/forgotten")
    def forgotten() -> dict[str, str]:
        return {}

    app.include_router(router, prefix="/api")
    assert undeclared_routes(app) == ["['GET'] /api/forgotten"]
    assert any(op.path == "/api/forgotten" and op.scope is None for op in operations(app))


def test_only_health_and_version_are_public() -> None:
    public = {(op.method, op.path) for op in OPERATIONS if op.scope == PUBLIC}
    assert public == PUBLIC_PATHS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthServer, dict[str, str]]]:
    home: Path = tmp_path_factory.mktemp("walk-home")
    server = AuthServer(home, host="0.0.0.0", log_level="warning", ORCH_AUTH_FAILURE_LIMIT="100000")
    try:
        server.wait_ready()
        yield server, {scope.value: server.key(scope.value) for scope in LADDER}
    finally:
        server.stop()


def test_the_live_server_serves_the_same_operations(server: tuple[AuthServer, dict[str, str]]) -> None:
    live, keys = server
    schema = live.get("/openapi.json", keys["read"]).json()
    documented = {
        (method.upper(), path, op.get("x-orch-scope"))
        for path, item in schema["paths"].items()
        for method, op in item.items()
    }
    expected = {
        (op.method, op.path, op.scope) for op in OPERATIONS if op.path not in ("/api/openapi.json", "/api/docs")
    }
    expected = {e for e in expected if not e[1].startswith("/docs/")}
    assert documented == expected
    assert not any(op.path in schema["paths"] for op in PAGES)


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.id)
def test_route_enforces_its_scope(server: tuple[AuthServer, dict[str, str]], op: Operation) -> None:
    live, keys = server
    assert op.scope is not None, f"{op.id} declares no scope: add dependencies=[requires(Scope.X)]"
    url = op.url()
    body: dict[str, Any] = {"json": {}} if op.method in ("POST", "PATCH", "PUT") else {}
    if op.scope == PUBLIC:
        assert (op.method, op.path) in PUBLIC_PATHS
        assert live.request(op.method, url, **body).status_code == 200
        return

    missing = live.request(op.method, url, **body)
    assert missing.status_code == 401, f"{op.id} without a key answered {missing.status_code}"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    unknown = live.request(op.method, url, "orch_0123456789ab_" + "Q" * 44, **body)
    assert unknown.status_code == 401, f"{op.id} with an unknown key answered {unknown.status_code}"
    admin_id = keys["admin"].rsplit("_", 1)[0]
    forged = live.request(op.method, url, f"{admin_id}_{'Q' * 44}", **body)
    assert forged.status_code == 401, f"{op.id} with a forged admin key answered {forged.status_code}"

    needed = Scope(op.scope)
    rank = LADDER.index(needed)
    if rank > 0:
        weaker = LADDER[rank - 1]
        too_small = live.request(op.method, url, keys[weaker.value], **body)
        assert too_small.status_code == 403, f"{op.id} with a {weaker.value} key answered {too_small.status_code}"
    enough = live.request(op.method, url, keys[needed.value], **body)
    assert enough.status_code not in (401, 403, 500), f"{op.id} with a {needed.value} key: {enough.text}"


@pytest.mark.parametrize("page", PAGES, ids=lambda op: op.id)
def test_page_refuses_anonymous_visitors(server: tuple[AuthServer, dict[str, str]], page: Operation) -> None:
    live, _keys = server
    url = re.sub(r"\{([^}]+)\}", lambda _m: str(uuid.uuid4()), page.path)
    response = httpx.request(page.method, f"{live.url}{url}", follow_redirects=False, timeout=30)
    if (page.method, page.path) in PUBLIC_PAGES:
        assert response.status_code == 200
        return
    assert response.status_code in (302, 303, 307, 401, 403), f"{page.id} answered {response.status_code}"
    if response.status_code in (302, 303, 307):
        assert response.headers["location"].split("?")[0].endswith("/login")
