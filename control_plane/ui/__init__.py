"""The web UI: server-rendered pages (Jinja2) made live with htmx, served by the control plane itself.

::

    session.py        who is looking (scope), login sessions in a signed cookie, CSRF tokens
    web.py            the viewer dependency, form bodies, redirects, error pages
    render.py         the Jinja2 environment, template filters, Server-Timing and cache headers
    queries.py        the few reads the model layer has no function for (aggregates, names in one query)
    forms.py          the deployment Run form generated from the parameter JSON schema
    routes_runs.py    dashboard, flow runs, a run's page, logs, cancel / retry / delete
    routes_manage.py  flows, deployments (+ Run), work queues and agents, API keys, login
    templates/        the pages; static/  CSS, app.js, htmx (vendored, 0BSD licence beside it)

``install(app)`` is called by ``create_app`` (``OPTIONAL_EXTENSIONS``): UI routes are control-plane routes in the
same process, calling the model layer directly with the same sessions as the API's routes. Everything under
``/api`` stays the API's. The UI's rules for who may do what are the API's; see docs/ui.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from fastapi import FastAPI

STATIC = Path(__file__).parent / "static"

__all__ = ["install"]


def install(app: FastAPI) -> None:
    from fastapi import Request
    from fastapi.responses import RedirectResponse, Response
    from fastapi.staticfiles import StaticFiles

    from orch.control_plane.ui import routes_manage, routes_runs
    from orch.control_plane.ui.session import LoginRequired, NotAllowed
    from orch.control_plane.ui.web import error_page

    app.include_router(routes_runs.router)
    app.include_router(routes_manage.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="ui-static")

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET" or request.headers.get("hx-request"):
            # An expired session during an action or a live refresh: tell htmx to load the login page.
            return Response(
                "Log in again.", status_code=401, headers={"HX-Redirect": f"/login?next={quote(target, safe='')}"}
            )
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(NotAllowed)
    async def _not_allowed(request: Request, exc: NotAllowed) -> Response:
        viewer = getattr(request.state, "ui_viewer", None)
        return error_page(request, viewer, 403, "Not allowed", exc.message)
