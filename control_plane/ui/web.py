"""Plumbing the UI's route modules share: the viewer dependency, form bodies, redirects and error pages.

Forms are posted as ``application/x-www-form-urlencoded`` (plain HTML forms and htmx both send that) and parsed
here with the standard library, so the UI needs no multipart parser. An action answers ``303 See Other`` to the
page to show next (Post/Redirect/Get), or, to an htmx request, ``HX-Redirect`` with the same target.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orch.control_plane.db.engine import Database
from orch.control_plane.ui.render import render, start_timer
from orch.control_plane.ui.session import Viewer, check_csrf, resolve_viewer

MAX_FORM_BYTES = 256 * 1024
T = TypeVar("T")


async def viewer_dep(request: Request) -> Viewer:
    """FastAPI dependency: the viewer (or a redirect to /login, through the ``LoginRequired`` handler)."""
    start_timer(request)
    return await resolve_viewer(request)


async def form_dep(request: Request) -> dict[str, str]:
    """FastAPI dependency: the posted urlencoded form as a dict (the last value wins; ``p.`` fields are unique)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def db_of(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


@contextmanager
def timed() -> Iterator[list[float]]:
    """Measure a block's time in milliseconds: ``with timed() as t: ...; t[0]``."""
    box = [0.0]
    start = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = (time.perf_counter() - start) * 1000


def read(request: Request, fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """Run ``fn(session, *args)`` in a read session; returns its result and the milliseconds it took."""
    with timed() as t, db_of(request).session(write=False) as session:
        result = fn(session, *args)
    return result, t[0]


def action_guard(request: Request, viewer: Viewer, form: dict[str, str]) -> None:
    """What every state-changing UI request passes first: CSRF token and same-origin check."""
    check_csrf(request, viewer, form)


def redirect(request: Request, url: str) -> Response:
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def error_page(request: Request, viewer: Viewer | None, status: int, title: str, message: str) -> HTMLResponse:
    return render(request, viewer, "error.html", {"title": title, "message": message}, status_code=status)


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
