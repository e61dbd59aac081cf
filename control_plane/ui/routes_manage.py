"""Pages about what runs are made from and where they go: flows, deployments (with the Run form), work queues and
agents, API keys, and the login page.

Actions need the scope of the API route that does the same thing: deployment pause/resume and Run, work-queue
pause/resume ``deploy``; API keys ``admin``. Deployment changes are mirrored to the schedule backend after the
commit, as the API does.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from orch.control_plane.api.security import Scope
from orch.control_plane.db import orm
from orch.control_plane.models import api_keys as keys_model
from orch.control_plane.models import deployments as deployments_model
from orch.control_plane.models import work_queues as queues_model
from orch.control_plane.scheduling import describe, next_times
from orch.control_plane.schemas.base import now_utc
from orch.control_plane.schemas.deployments import DeploymentFilter, DeploymentFlowRunCreate
from orch.control_plane.schemas.work_queues import WorkQueueUpdate
from orch.control_plane.ui import forms, queries
from orch.control_plane.ui import session as sessions
from orch.control_plane.ui.render import render, start_timer
from orch.control_plane.ui.session import Viewer
from orch.control_plane.ui.web import (
    action_guard,
    db_of,
    error_page,
    form_dep,
    parse_uuid,
    read,
    redirect,
    viewer_dep,
)
from orch.exceptions import InvalidInput

router = APIRouter(include_in_schema=False)
logger = logging.getLogger("orch.control_plane.ui")

# -- flows ---------------------------------------------------------------------------------------------------------


@router.get("/flows", response_class=HTMLResponse)
def flows_page(request: Request, viewer: Viewer = Depends(viewer_dep)) -> HTMLResponse:
    flows, ms = read(request, queries.flows_overview)
    return render(request, viewer, "flows.html", {"flows": flows}, data_ms=ms)


# -- deployments ---------------------------------------------------------------------------------------------------


def _deployment_view(
    row: Any, flow_name: str, schedules: list[Any], *, upcoming: int, now: dt.datetime
) -> dict[str, Any]:
    """A deployment with its schedules in words and its next ``upcoming`` times (computed from the schedule rows
    already loaded, as ``models.deployments.upcoming`` does: none when paused, active schedules merged)."""
    shown = []
    times: set[dt.datetime] = set()
    for schedule in schedules:
        spec = deployments_model.spec_of(schedule)
        raw = spec.model_dump(mode="json", exclude_defaults=True)
        expression = raw.get("cron") or raw.get("rrule") or (f"every {raw['interval']} s" if "interval" in raw else "")
        shown.append({"words": describe(spec), "expression": expression, "active": schedule.active})
        if schedule.active and not row.paused:
            times.update(next_times(spec, now, n=upcoming))
    return {"row": row, "flow_name": flow_name, "schedules": shown, "upcoming": sorted(times)[:upcoming]}


def _schedules_by_deployment(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
    """All the schedules of these deployments in one query (not one per deployment)."""
    found: dict[uuid.UUID, list[Any]] = {i: [] for i in ids}
    if ids:
        query = (
            sa.select(orm.DeploymentSchedule)
            .where(orm.DeploymentSchedule.deployment_id.in_(ids))
            .order_by(orm.DeploymentSchedule.created, orm.DeploymentSchedule.id)
        )
        for schedule in session.scalars(query):
            found[schedule.deployment_id].append(schedule)
    return found


def _deployments_data(session: Session) -> list[dict[str, Any]]:
    rows = deployments_model.filter_(session, DeploymentFilter(limit=500))
    names = queries.flow_names(session, [r.flow_id for r in rows])
    schedules = _schedules_by_deployment(session, [r.id for r in rows])
    now = now_utc()
    return [_deployment_view(r, names.get(r.flow_id, "?"), schedules[r.id], upcoming=3, now=now) for r in rows]


@router.get("/deployments", response_class=HTMLResponse)
def deployments_page(request: Request, viewer: Viewer = Depends(viewer_dep), notice: str = "") -> HTMLResponse:
    deployments, ms = read(request, _deployments_data)
    text = {"paused": "Deployment paused.", "resumed": "Deployment resumed."}.get(notice)
    return render(request, viewer, "deployments.html", {"deployments": deployments, "notice": text}, data_ms=ms)


def _deployment_data(session: Session, deployment_id: uuid.UUID) -> dict[str, Any] | None:
    row = deployments_model.read(session, deployment_id)
    if row is None:
        return None
    name = queries.flow_names(session, [row.flow_id]).get(row.flow_id, "?")
    view = _deployment_view(row, name, deployments_model.schedules_of(session, row.id), upcoming=10, now=now_utc())
    from orch.control_plane.models import flow_runs as runs_model
    from orch.control_plane.schemas.filters import FlowRunFilter

    flt = FlowRunFilter.model_validate({"flow_runs": {"deployment_id": {"any_": [str(row.id)]}}, "limit": 10})
    view["recent"] = runs_model.filter_(session, flt)[0]
    return view


def _deployment_page(
    request: Request,
    viewer: Viewer,
    deployment_id: str,
    *,
    fields: list[forms.Field] | None = None,
    form_error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    did = parse_uuid(deployment_id)
    data, ms = read(request, _deployment_data, did) if did else (None, 0.0)
    if data is None:
        return error_page(request, viewer, 404, "Deployment not found", f"There is no deployment {deployment_id}.")
    row = data["row"]
    if fields is None:
        fields = forms.build_fields(row.parameter_schema or {}, row.parameters or {})
    context = {**data, "fields": fields, "form_error": form_error}
    return render(request, viewer, "deployment.html", context, data_ms=ms, status_code=status_code)


@router.get("/deployments/{deployment_id}", response_class=HTMLResponse)
def deployment_page(request: Request, deployment_id: str, viewer: Viewer = Depends(viewer_dep)) -> HTMLResponse:
    return _deployment_page(request, viewer, deployment_id)


@router.post("/deployments/{deployment_id}/run")
def run_deployment(
    request: Request,
    deployment_id: str,
    viewer: Viewer = Depends(viewer_dep),
    form: dict[str, str] = Depends(form_dep),
) -> Response:
    """Create a run from the Run form: typed values from the form, then the deployment's own schema check."""
    action_guard(request, viewer, form)
    viewer.require(Scope.DEPLOY)
    did = parse_uuid(deployment_id)
    if did is None:
        return error_page(request, viewer, 404, "Deployment not found", f"There is no deployment {deployment_id}.")
    with db_of(request).session() as session:
        row = deployments_model.read(session, did)
        if row is None:
            return error_page(request, viewer, 404, "Deployment not found", f"There is no deployment {deployment_id}.")
        schema = row.parameter_schema or {}
        fields = forms.build_fields(schema, row.parameters or {})
        parameters = forms.parse(fields, form, schema)
        if any(f.error for f in fields):
            session.rollback()
            return _deployment_page(request, viewer, deployment_id, fields=fields, status_code=422)
        name = form.get("name", "").strip() or None
        try:
            run, _ = deployments_model.create_flow_run(
                session, row, DeploymentFlowRunCreate(parameters=parameters, name=name)
            )
            run_id = run.id
        except InvalidInput as exc:
            session.rollback()
            left = forms.attach_server_errors(fields, str(exc))
            return _deployment_page(request, viewer, deployment_id, fields=fields, form_error=left, status_code=422)
    return redirect(request, f"/runs/{run_id}?notice=created")


def _sync_schedules(request: Request, deployment_id: uuid.UUID) -> str | None:
    from orch.control_plane.scheduling.backends import ScheduleBackendError, get_backend

    try:
        get_backend(request.app.state.settings).sync(db_of(request), deployment_id)
    except ScheduleBackendError as exc:
        return f"Saved, but the schedule backend was not updated: {exc}"
    return None


def _set_deployment_paused(request: Request, viewer: Viewer, deployment_id: str, paused: bool) -> Response:
    viewer.require(Scope.DEPLOY)
    did = parse_uuid(deployment_id)
    found = None
    if did is not None:
        with db_of(request).session() as session:
            found = deployments_model.set_paused(session, did, paused)
    if did is None or found is None:
        return error_page(request, viewer, 404, "Deployment not found", f"There is no deployment {deployment_id}.")
    problem = _sync_schedules(request, did)
    if problem:
        return error_page(request, viewer, 502, "Schedule backend error", problem)
    return redirect(request, f"/deployments?notice={'paused' if paused else 'resumed'}")


@router.post("/deployments/{deployment_id}/pause")
def pause_deployment(
    request: Request, deployment_id: str, viewer: Viewer = Depends(viewer_dep), form: dict[str, str] = Depends(form_dep)
) -> Response:
    action_guard(request, viewer, form)
    return _set_deployment_paused(request, viewer, deployment_id, True)


@router.post("/deployments/{deployment_id}/resume")
def resume_deployment(
    request: Request, deployment_id: str, viewer: Viewer = Depends(viewer_dep), form: dict[str, str] = Depends(form_dep)
) -> Response:
    action_guard(request, viewer, form)
    return _set_deployment_paused(request, viewer, deployment_id, False)


# -- work queues ---------------------------------------------------------------------------------------------------


def _queues_data(session: Session) -> dict[str, Any]:
    now = now_utc()
    queues: list[dict[str, Any]] = []
    waiting_flows: list[uuid.UUID] = []
    for queue in queues_model.filter_(session, limit=200):
        waiting = queues_model.waiting_runs(session, queue.name, limit=10)
        queues.append(
            {
                "queue": queue,
                "counts": queues_model.counts(session, queue.name, now),
                "waiting": waiting,
                "agents": queues_model.agents(session, work_queue=queue.name),
            }
        )
        waiting_flows.extend(r.flow_id for r in waiting)
    names = queries.flow_names(session, waiting_flows)
    return {"queues": queues, "agents": queues_model.agents(session), "flow_names": names}


@router.get("/work-queues", response_class=HTMLResponse)
def queues_page(request: Request, viewer: Viewer = Depends(viewer_dep)) -> HTMLResponse:
    data, ms = read(request, _queues_data)
    return render(request, viewer, "work_queues.html", data, data_ms=ms)


def _set_queue_paused(request: Request, viewer: Viewer, queue_id: str, paused: bool) -> Response:
    viewer.require(Scope.DEPLOY)
    qid = parse_uuid(queue_id)
    found = False
    if qid is not None:
        with db_of(request).session() as session:
            queue = queues_model.read(session, qid)
            if queue is not None:
                queues_model.update(session, queue, WorkQueueUpdate(paused=paused))
                found = True
    if not found:
        return error_page(request, viewer, 404, "Work queue not found", f"There is no work queue {queue_id}.")
    return redirect(request, "/work-queues")


@router.post("/work-queues/{queue_id}/pause")
def pause_queue(
    request: Request, queue_id: str, viewer: Viewer = Depends(viewer_dep), form: dict[str, str] = Depends(form_dep)
) -> Response:
    action_guard(request, viewer, form)
    return _set_queue_paused(request, viewer, queue_id, True)


@router.post("/work-queues/{queue_id}/resume")
def resume_queue(
    request: Request, queue_id: str, viewer: Viewer = Depends(viewer_dep), form: dict[str, str] = Depends(form_dep)
) -> Response:
    action_guard(request, viewer, form)
    return _set_queue_paused(request, viewer, queue_id, False)


# -- API keys ------------------------------------------------------------------------------------------------------

SCOPES = [s.value for s in Scope]
EXPIRIES = {"": None, "7d": 7, "30d": 30, "90d": 90, "365d": 365}


def _keys_page(
    request: Request, viewer: Viewer, *, created: Any = None, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    keys, ms = read(request, lambda s: keys_model.list_(s, include_inactive=True))
    now = now_utc()
    context = {
        "keys": keys,
        "created": created,
        "error": error,
        "scopes": SCOPES,
        "expiries": list(EXPIRIES),
        "now_ts": now,
    }
    return render(request, viewer, "api_keys.html", context, data_ms=ms, status_code=status_code)


@router.get("/api-keys", response_class=HTMLResponse)
def keys_page(request: Request, viewer: Viewer = Depends(viewer_dep)) -> HTMLResponse:
    if not viewer.can(Scope.ADMIN):
        return error_page(request, viewer, 403, "Admins only", "Managing API keys needs an admin key.")
    return _keys_page(request, viewer)


@router.post("/api-keys", response_class=HTMLResponse)
def create_key(
    request: Request, viewer: Viewer = Depends(viewer_dep), form: dict[str, str] = Depends(form_dep)
) -> HTMLResponse:
    """Create a key and show it once, in this response only (no redirect: the key is never put in a URL)."""
    action_guard(request, viewer, form)
    viewer.require(Scope.ADMIN)
    name, scope, expiry = form.get("name", "").strip(), form.get("scope", ""), form.get("expires", "")
    if not name or len(name) > 200 or scope not in SCOPES or expiry not in EXPIRIES:
        problem = "Give the key a name (up to 200 characters) and a scope."
        return _keys_page(request, viewer, error=problem, status_code=422)
    days = EXPIRIES[expiry]
    expires_at = now_utc() + dt.timedelta(days=days) if days else None
    with db_of(request).session() as session:
        row, key = keys_model.create(session, name=name, scope=scope, expires_at=expires_at)
        created = {"name": row.name, "scope": row.scope, "prefix": row.prefix, "key": key.full}
    authenticator = getattr(request.app.state, "authenticate", None)
    if authenticator is not None:
        authenticator.note_key_created()
    return _keys_page(request, viewer, created=created, status_code=201)


@router.post("/api-keys/{key_id}/revoke")
def revoke_key(
    request: Request, key_id: str, viewer: Viewer = Depends(viewer_dep), form: dict[str, str] = Depends(form_dep)
) -> Response:
    action_guard(request, viewer, form)
    viewer.require(Scope.ADMIN)
    kid = parse_uuid(key_id)
    row = None
    if kid is not None:
        with db_of(request).session() as session:
            row = keys_model.revoke(session, kid)
    if row is None:
        return error_page(request, viewer, 404, "API key not found", f"There is no API key {key_id}.")
    return redirect(request, "/api-keys")


# -- login ---------------------------------------------------------------------------------------------------------


def _safe_next(value: str) -> str:
    """Only same-site paths after login (never an absolute URL: no open redirect)."""
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _login_page(request: Request, next_url: str, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    token, new = sessions._double_submit_token(request)
    viewer = Viewer(auth_enabled=True, scope=Scope.READ, csrf=token, new_csrf_cookie=new)
    context = {"next_url": _safe_next(next_url), "error": error, "login_page": True}
    return render(request, viewer, "login.html", context, status_code=status_code)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/") -> Response:
    start_timer(request)
    if not await sessions.auth_enabled(request):
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_page(request, next)


@router.post("/login")
async def login_submit(request: Request, form: dict[str, str] = Depends(form_dep)) -> Response:
    start_timer(request)
    next_url = _safe_next(form.get("next", "/"))
    if not await sessions.auth_enabled(request):
        return RedirectResponse(next_url, status_code=303)
    sent, cookie = form.get(sessions.CSRF_FIELD, ""), request.cookies.get(sessions.CSRF_COOKIE, "")
    try:
        sessions.check_origin(request)
        if not cookie or sent != cookie:
            raise sessions.NotAllowed("Missing or invalid CSRF token: reload the page and try again.")
    except sessions.NotAllowed as exc:
        return _login_page(request, next_url, error=exc.message, status_code=403)
    from starlette.concurrency import run_in_threadpool

    try:
        value, lifetime = await run_in_threadpool(sessions.login, request, form.get("key", ""))
    except sessions.LoginFailed as exc:
        return _login_page(request, next_url, error=exc.message, status_code=401)
    response = RedirectResponse(next_url, status_code=303)
    sessions.set_cookie(response, request, sessions.SESSION_COOKIE, value, max_age=lifetime)
    return response


@router.post("/logout")
async def logout(request: Request, form: dict[str, str] = Depends(form_dep)) -> Response:
    """End the session (CSRF-checked, so another site cannot log a user out)."""
    try:
        viewer = await sessions.resolve_viewer(request)
        sessions.check_csrf(request, viewer, form)
    except sessions.LoginRequired:
        pass
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sessions.SESSION_COOKIE, path="/")
    return response
