"""Rendering: the Jinja2 environment, the template filters pages share, and the response every page goes out as.

Templates are compiled once per process (Jinja caches them); a response carries a ``Server-Timing`` header with
the time spent since the request reached the UI, split into data (database) and render, so the benchmark and a
browser's network panel read the server's own time.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from orch.control_plane.schemas.base import now_utc
from orch.control_plane.ui.session import Viewer, attach_cookies

TEMPLATES = Path(__file__).parent / "templates"

LEVEL_NAMES = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


def duration(seconds: float | None) -> str:
    """``1h 02m``, ``3m 04s``, ``5.2s``, ``120ms``."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def timestamp(value: dt.datetime | None) -> Markup:
    """A ``<time>`` element in UTC; app.js rewrites it to the browser's local time and adds a relative title."""
    if value is None:
        return Markup("—")
    utc = value.astimezone(dt.UTC)
    return Markup('<time datetime="{iso}">{text}</time>').format(
        iso=utc.isoformat(), text=utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    )


def relative(value: dt.datetime | None) -> str:
    if value is None:
        return "never"
    delta = (now_utc() - value).total_seconds()
    future = delta < 0
    text = duration(abs(delta)) if abs(delta) >= 1 else "now"
    if text == "now":
        return text
    return f"in {text}" if future else f"{text} ago"


def level_name(level: int) -> str:
    return LEVEL_NAMES.get(level, str(level))


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def state_class(state_type: str | None) -> str:
    return f"state state-{(state_type or 'none').lower()}"


def _make_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(
        duration=duration,
        timestamp=timestamp,
        relative=relative,
        level_name=level_name,
        pretty_json=pretty_json,
        state_class=state_class,
    )
    return env


ENV = _make_env()


def start_timer(request: Request) -> None:
    request.state.ui_t0 = time.perf_counter()


def render(
    request: Request,
    viewer: Viewer | None,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    data_ms: float | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    t_render = time.perf_counter()
    html = ENV.get_template(template).render(
        request=request, viewer=viewer, path=request.url.path, now=now_utc(), **context
    )
    done = time.perf_counter()
    t0 = getattr(request.state, "ui_t0", t_render)
    timing = [f"render;dur={(done - t_render) * 1000:.1f}", f"total;dur={(done - t0) * 1000:.1f}"]
    if data_ms is not None:
        timing.insert(0, f"db;dur={data_ms:.1f}")
    response = HTMLResponse(html, status_code=status_code, headers=headers)
    response.headers["Server-Timing"] = ", ".join(timing)
    # Pages show live data and may show secrets (a new API key): never serve them from a cache.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    if viewer is not None:
        attach_cookies(response, request, viewer)
    return response
