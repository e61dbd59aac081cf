"""``/api/deployments``: upsert, read (by id or ``flow/name``), filter, update, delete, pause/resume, schedules,
upcoming run times and ``create_flow_run`` — the routes of Prefect 3's deployments API that orch implements.

Every change to a deployment or its schedules is committed first, then mirrored by the schedule backend
(``ORCH_SCHEDULE_BACKEND``). When the backend fails (AWS unreachable, permissions), the answer is **502** with a
detail saying the change was saved and what failed: the client learns of it, a retry is harmless (every write here
is idempotent) and the services tick's ``reconcile()`` repairs the mirror anyway, so no orphan stays silently.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from orch.control_plane.api.deps import get_db
from orch.control_plane.api.security import Scope, requires
from orch.control_plane.db.engine import Database
from orch.control_plane.models import deployments as model
from orch.control_plane.models import flow_runs as flow_runs_model
from orch.control_plane.scheduling.backends import ScheduleBackendError, get_backend
from orch.control_plane.schemas.deployments import (
    Deployment,
    DeploymentCreate,
    DeploymentFilter,
    DeploymentFlowRunCreate,
    DeploymentUpdate,
    UpcomingRun,
)
from orch.control_plane.schemas.flow_runs import FlowRun
from orch.control_plane.schemas.schedules import (
    DeploymentSchedule,
    DeploymentScheduleCreate,
    DeploymentScheduleUpdate,
)
from orch.control_plane.settings import ServerSettings
from orch.exceptions import ObjectNotFound

router = APIRouter(prefix="/deployments", tags=["deployments"])


def _missing(id: uuid.UUID) -> ObjectNotFound:
    return ObjectNotFound(f"Deployment {id} not found.")


def _sync(request: Request, db: Database, deployment_id: uuid.UUID) -> None:
    """Mirror the deployment's schedules in the schedule backend, after the database change was committed."""
    settings: ServerSettings = request.app.state.settings
    try:
        get_backend(settings).sync(db, deployment_id)
    except ScheduleBackendError as exc:
        raise HTTPException(
            status_code=status.HTTP_502_BAD_GATEWAY,
            detail=f"The change was saved, but the schedule backend was not updated: {exc}. "
            "Retry the request, or let the scheduler's reconcile repair it.",
        ) from None


def _read(db: Database, id: uuid.UUID) -> Deployment:
    with db.session(write=False) as session:
        row = model.read(session, id)
        if row is None:
            raise _missing(id)
        return model.to_schema(session, row)


@router.post("/", dependencies=[requires(Scope.DEPLOY)])
def create_deployment(
    data: DeploymentCreate, request: Request, response: Response, db: Database = Depends(get_db)
) -> Deployment:
    """Create, or replace the deployment with the same flow and name (201 when created, 200 when replaced)."""
    with db.session() as session:
        row, created = model.upsert(session, data)
        deployment_id = row.id
    _sync(request, db, deployment_id)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return _read(db, deployment_id)


@router.post("/filter", dependencies=[requires(Scope.READ)])
def filter_deployments(flt: DeploymentFilter | None = None, db: Database = Depends(get_db)) -> list[Deployment]:
    with db.session(write=False) as session:
        return [model.to_schema(session, row) for row in model.filter_(session, flt or DeploymentFilter())]


@router.get("/name/{flow_name}/{deployment_name}", dependencies=[requires(Scope.READ)])
def read_deployment_by_name(flow_name: str, deployment_name: str, db: Database = Depends(get_db)) -> Deployment:
    with db.session(write=False) as session:
        row = model.read_by_name(session, flow_name, deployment_name)
        if row is None:
            raise ObjectNotFound(f"Deployment '{flow_name}/{deployment_name}' not found.")
        return model.to_schema(session, row)


@router.get("/{id}", dependencies=[requires(Scope.READ)])
def read_deployment(id: uuid.UUID, db: Database = Depends(get_db)) -> Deployment:
    return _read(db, id)


@router.patch("/{id}", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def update_deployment(id: uuid.UUID, data: DeploymentUpdate, request: Request, db: Database = Depends(get_db)) -> None:
    with db.session() as session:
        if model.update(session, id, data) is None:
            raise _missing(id)
    _sync(request, db, id)


@router.delete("/{id}", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def delete_deployment(id: uuid.UUID, request: Request, db: Database = Depends(get_db)) -> None:
    """Delete the deployment, its schedules (and their EventBridge mirrors) and its runs that have not started."""
    with db.session() as session:
        if not model.delete(session, id):
            raise _missing(id)
    _sync(request, db, id)


def _set_paused(id: uuid.UUID, paused: bool, request: Request, db: Database) -> None:
    with db.session() as session:
        if model.set_paused(session, id, paused) is None:
            raise _missing(id)
    _sync(request, db, id)


@router.post("/{id}/pause", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def pause_deployment(id: uuid.UUID, request: Request, db: Database = Depends(get_db)) -> None:
    """Stop scheduling: future scheduled runs are deleted, EventBridge schedules are DISABLED."""
    _set_paused(id, True, request, db)


@router.post("/{id}/resume", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def resume_deployment(id: uuid.UUID, request: Request, db: Database = Depends(get_db)) -> None:
    _set_paused(id, False, request, db)


@router.post("/{id}/set_schedule_inactive", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def set_schedule_inactive(id: uuid.UUID, request: Request, db: Database = Depends(get_db)) -> None:
    """Prefect's name for ``pause``."""
    _set_paused(id, True, request, db)


@router.post("/{id}/set_schedule_active", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def set_schedule_active(id: uuid.UUID, request: Request, db: Database = Depends(get_db)) -> None:
    """Prefect's name for ``resume``."""
    _set_paused(id, False, request, db)


@router.get("/{id}/upcoming", dependencies=[requires(Scope.READ)])
def upcoming_runs(
    id: uuid.UUID, n: int = Query(10, ge=1, le=1000), db: Database = Depends(get_db)
) -> list[UpcomingRun]:
    """The next ``n`` times the deployment's active schedules fire (none while it is paused)."""
    with db.session(write=False) as session:
        row = model.read(session, id)
        if row is None:
            raise _missing(id)
        return model.upcoming(session, row, n)


@router.post("/{id}/create_flow_run", status_code=201, dependencies=[requires(Scope.DEPLOY)])
def create_flow_run(
    id: uuid.UUID, data: DeploymentFlowRunCreate, response: Response, db: Database = Depends(get_db)
) -> FlowRun:
    """A run of the deployment, Scheduled now (or at ``scheduled_time``). Parameters are the deployment's defaults
    merged with ``parameters`` and must match its parameter schema (422 names the parameter and the reason)."""
    with db.session() as session:
        row = model.read(session, id)
        if row is None:
            raise _missing(id)
        run, created = model.create_flow_run(session, row, data)
        if not created:
            response.status_code = status.HTTP_200_OK
        return flow_runs_model.to_schema(run)


# -- schedules -----------------------------------------------------------------------------------------------------


@router.post("/{id}/schedules", status_code=201, dependencies=[requires(Scope.DEPLOY)])
def create_schedules(
    id: uuid.UUID,
    data: list[DeploymentScheduleCreate],
    request: Request,
    db: Database = Depends(get_db),
) -> list[DeploymentSchedule]:
    """Add schedules to the deployment (a list, as in Prefect)."""
    with db.session() as session:
        rows = model.create_schedules(session, id, data)
        ids = [r.id for r in rows]
    _sync(request, db, id)
    with db.session(write=False) as session:
        return [model.schedule_to_schema(s) for s in model.schedules_of(session, id) if s.id in ids]


@router.get("/{id}/schedules", dependencies=[requires(Scope.READ)])
def read_schedules(id: uuid.UUID, db: Database = Depends(get_db)) -> list[DeploymentSchedule]:
    with db.session(write=False) as session:
        if model.read(session, id) is None:
            raise _missing(id)
        return [model.schedule_to_schema(s) for s in model.schedules_of(session, id)]


@router.get("/{id}/schedules/{schedule_id}", dependencies=[requires(Scope.READ)])
def read_schedule(id: uuid.UUID, schedule_id: uuid.UUID, db: Database = Depends(get_db)) -> DeploymentSchedule:
    with db.session(write=False) as session:
        row = model.read_schedule(session, id, schedule_id)
        if row is None:
            raise ObjectNotFound(f"Schedule {schedule_id} of deployment {id} not found.")
        return model.schedule_to_schema(row)


@router.patch("/{id}/schedules/{schedule_id}", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def update_schedule(
    id: uuid.UUID,
    schedule_id: uuid.UUID,
    data: DeploymentScheduleUpdate,
    request: Request,
    db: Database = Depends(get_db),
) -> None:
    with db.session() as session:
        if model.update_schedule(session, id, schedule_id, data) is None:
            raise ObjectNotFound(f"Schedule {schedule_id} of deployment {id} not found.")
    _sync(request, db, id)


@router.delete("/{id}/schedules/{schedule_id}", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def delete_schedule(id: uuid.UUID, schedule_id: uuid.UUID, request: Request, db: Database = Depends(get_db)) -> None:
    with db.session() as session:
        if not model.delete_schedule(session, id, schedule_id):
            raise ObjectNotFound(f"Schedule {schedule_id} of deployment {id} not found.")
    _sync(request, db, id)
