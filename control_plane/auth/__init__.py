"""API-key authentication of the control plane.

::

    keys.py           the key format (orch_<key id>_<secret>), hashing and constant-time verification
    ratelimit.py      failed authentications per source address -> 429
    authenticator.py  the hook ``requires(scope)`` awaits on every route: mode, key, scope
    bootstrap.py      the first admin key: ``orch server bootstrap-key`` locally, Secrets Manager on AWS

``install(app)`` is called by ``create_app`` (``OPTIONAL_EXTENSIONS``): it sets ``app.state.authenticate``, puts
the OpenAPI document and the docs page behind the ``read`` scope like every other route, and describes the bearer
scheme and each operation's scope (``x-orch-scope``) in the OpenAPI document. The Lambda handler calls
``ensure_bootstrap_key`` on cold start. The rationale and the operator's view are in docs/security.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SDK imports ``auth.keys`` (masking keys in the CLI) without FastAPI's import cost
    from fastapi import FastAPI, Request

    from orch.control_plane.api.security import Scope
    from orch.control_plane.auth.bootstrap import BootstrapResult
    from orch.control_plane.db.engine import Database

__all__ = ["ensure_bootstrap_key", "ensure_bootstrap_key_from_aws", "install", "require"]


def install(app: FastAPI) -> None:
    from orch.control_plane.auth.authenticator import Authenticator

    app.state.authenticate = Authenticator(app.state.settings, app.state.database)
    _guard_docs(app)
    _describe_security(app)


async def require(request: Request, scope: Scope) -> None:
    """Check a further scope inside a route whose needs depend on its input (e.g. creating a flow run *for a
    deployment* needs ``deploy`` although ad-hoc runs need only ``agent``). A no-op where authentication is off
    or the call is in-process; the key is looked up once per request."""
    check = getattr(request.app.state, "authenticate", None)
    if check is not None:
        await check(request, scope)


def ensure_bootstrap_key(db: Database, secret_value: str) -> BootstrapResult:
    """Store the hash of the AWS bootstrap admin key if no admin key exists (see ``bootstrap.py``)."""
    from orch.control_plane.auth import bootstrap

    return bootstrap.ensure_bootstrap_key(db, secret_value)


def ensure_bootstrap_key_from_aws(db: Database, secret_arn: str, *, secrets_client: Any = None) -> BootstrapResult:
    """``ensure_bootstrap_key`` with the value read from the Secrets Manager secret ``secret_arn``."""
    from orch.control_plane.auth import bootstrap

    return bootstrap.ensure_bootstrap_key_from_aws(db, secret_arn, secrets_client=secrets_client)


def _guard_docs(app: FastAPI) -> None:
    """FastAPI serves its OpenAPI document and docs page outside the routers; re-add them as routes that declare a
    scope, so that "every route but health and version needs a key" has no exception."""
    from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    from orch.control_plane.api.security import Scope, requires

    builtin = {p for p in (app.openapi_url, app.docs_url, app.swagger_ui_oauth2_redirect_url) if p}
    app.router.routes[:] = [r for r in app.router.routes if not (type(r) is Route and r.path in builtin)]
    guard = [requires(Scope.READ)]
    if app.openapi_url:
        openapi_url = app.openapi_url

        async def openapi() -> JSONResponse:
            return JSONResponse(app.openapi())

        app.add_api_route(openapi_url, openapi, dependencies=guard, include_in_schema=False)
        if app.docs_url:
            redirect_url = app.swagger_ui_oauth2_redirect_url

            async def docs() -> HTMLResponse:
                return get_swagger_ui_html(
                    openapi_url=openapi_url, title=f"{app.title} - API", oauth2_redirect_url=redirect_url
                )

            app.add_api_route(app.docs_url, docs, dependencies=guard, include_in_schema=False)
            if redirect_url:

                async def redirect() -> HTMLResponse:
                    return get_swagger_ui_oauth2_redirect_html()

                app.add_api_route(redirect_url, redirect, dependencies=guard, include_in_schema=False)


def api_routes(app: FastAPI) -> list[tuple[str, set[str], Any]]:
    """Every API route of ``app`` as (full path, methods, route): FastAPI >= 0.16x keeps included routers nested,
    older versions flatten them into ``app.routes``."""
    from fastapi.routing import APIRoute

    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: routes are flat
        return [(r.path_format, set(r.methods or ()), r) for r in app.routes if isinstance(r, APIRoute)]
    found = []
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            found.append((str(context.path_format), set(context.methods or ()), context))
    return found


def _describe_security(app: FastAPI) -> None:
    """Add the bearer scheme and each operation's declared scope (``x-orch-scope``) to the OpenAPI document."""
    from orch.control_plane.api.security import PUBLIC, declared_scope

    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # cached by FastAPI (and rebuilt when routes change); annotating again is idempotent
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["apiKey"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An orch API key: orch_<key id>_<secret>.",
        }
        for path, methods, route in api_routes(app):
            scope = declared_scope(route)
            for method in methods:
                operation = schema.get("paths", {}).get(path, {}).get(method.lower())
                if operation is None:
                    continue
                operation["x-orch-scope"] = str(scope) if scope is not None else None
                if scope != PUBLIC:
                    operation["security"] = [{"apiKey": []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
