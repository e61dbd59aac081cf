"""``/api/flow_runs``: create, read, filter/paginate, update, delete, ``set_state``, heartbeat, history."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request, Response, status
from starlette.concurrency import run_in_threadpool

from orch.control_plane.api import hot
from orch.control_plane.api.deps import get_db
from orch.control_plane.api.hot import hot_route
from orch.control_plane.api.security import Scope, require_scope, requires
from orch.control_plane.db.engine import Database
from orch.control_plane.models import flow_runs as model
from orch.control_plane.schemas.filters import FlowRunFilter
from orch.control_plane.schemas.flow_runs import (
    FlowRun,
    FlowRunCreate,
    FlowRunPage,
    FlowRunUpdate,
    HeartbeatResponse,
)
from orch.control_plane.schemas.states import (
    OrchestrationResult,
    SetStateRequest,
    SetStateStatus,
    State,
    StateType,
)
from orch.exceptions import ObjectNotFound

router = APIRouter(prefix="/flow_runs", tags=["flow runs"])
NEXT_CURSOR_HEADER = "X-Orch-Next-Cursor"


def _missing(id: uuid.UUID) -> ObjectNotFound:
    return ObjectNotFound(f"Flow run {id} not found.")


@router.post("/", response_model=FlowRun, responses={201: {"model": FlowRun}}, dependencies=[requires(Scope.AGENT)])
async def create_flow_run(data: FlowRunCreate, request: Request) -> Response:
    """Create a run. With an ``idempotency_key`` already used for the flow, answer the existing run (200).

    Ad-hoc runs (a script's flow, a subflow) need the ``agent`` scope; a run of a deployment or in a work queue is
    code the agents will execute, so it needs ``deploy`` (as ``/deployments/{id}/create_flow_run`` does).
    """
    return await _create_flow_run(request, data)


@hot_route("/flow_runs/", Scope.AGENT)
async def _create_flow_run_hot(request: Request) -> Response:
    return await _create_flow_run(request, await hot.body(request, FlowRunCreate))


async def _create_flow_run(request: Request, data: FlowRunCreate) -> Response:
    if data.deployment_id is not None or data.work_queue_name is not None:
        await require_scope(request, Scope.DEPLOY)
    db: Database = request.app.state.database
    if db.async_pg is not None:
        run, created = await model.create_async(db, data)
    else:
        run, created = await run_in_threadpool(_create, db, data)
    return _json(run, status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _json(model: FlowRun | OrchestrationResult, status_code: int) -> Response:
    # The model was built from validated data: serialize it once, without FastAPI's second validation pass.
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


def _create(db: Database, data: FlowRunCreate) -> tuple[FlowRun, bool]:
    with db.session() as session:
        return model.create_for_api(session, data)


@router.get("/{id}", dependencies=[requires(Scope.READ)])
def read_flow_run(id: uuid.UUID, db: Database = Depends(get_db)) -> FlowRun:
    with db.session(write=False) as session:
        run = model.read(session, id)
        if run is None:
            raise _missing(id)
        return model.to_schema(run)


@router.patch("/{id}", status_code=204, dependencies=[requires(Scope.AGENT)])
async def update_flow_run(id: uuid.UUID, data: FlowRunUpdate, request: Request, db: Database = Depends(get_db)) -> None:
    """Agents record infrastructure ids and retry policies; changing what a run computes needs ``deploy``."""
    if data.parameters is not None:
        await require_scope(request, Scope.DEPLOY)
    await run_in_threadpool(_update, db, id, data)


def _update(db: Database, id: uuid.UUID, data: FlowRunUpdate) -> None:
    with db.session() as session:
        if model.update(session, id, data) is None:
            raise _missing(id)


@router.delete("/{id}", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def delete_flow_run(id: uuid.UUID, db: Database = Depends(get_db)) -> None:
    with db.session() as session:
        if not model.delete(session, id):
            raise _missing(id)


@router.post("/filter", dependencies=[requires(Scope.READ)])
def filter_flow_runs(
    response: Response, flt: FlowRunFilter | None = None, db: Database = Depends(get_db)
) -> list[FlowRun]:
    """Prefect-compatible list. The next page's cursor, if any, is in the ``X-Orch-Next-Cursor`` header."""
    with db.session(write=False) as session:
        rows, cursor = model.filter_(session, flt or FlowRunFilter())
        if cursor:
            response.headers[NEXT_CURSOR_HEADER] = cursor
        return [model.to_schema(r) for r in rows]


@router.post("/paginate", dependencies=[requires(Scope.READ)])
def paginate_flow_runs(flt: FlowRunFilter | None = None, db: Database = Depends(get_db)) -> FlowRunPage:
    with db.session(write=False) as session:
        rows, cursor = model.filter_(session, flt or FlowRunFilter())
        return FlowRunPage(results=[model.to_schema(r) for r in rows], next_cursor=cursor)


@router.post("/count", dependencies=[requires(Scope.READ)])
def count_flow_runs(flt: FlowRunFilter | None = None, db: Database = Depends(get_db)) -> int:
    with db.session(write=False) as session:
        return model.count(session, flt or FlowRunFilter())


@router.post(
    "/{id}/set_state",
    response_model=OrchestrationResult,
    responses={201: {"model": OrchestrationResult}},
    dependencies=[requires(Scope.AGENT)],
)
async def set_flow_run_state(id: uuid.UUID, body: SetStateRequest, request: Request) -> Response:
    """Propose a state. ACCEPT answers 201; REJECT, WAIT and ABORT answer 200 with the reason.

    ``force`` skips the orchestration rules (bookkeeping still applies), so it needs ``deploy``.
    """
    return await _set_flow_run_state(request, id, body)


@hot_route("/flow_runs/{id}/set_state", Scope.AGENT)
async def _set_flow_run_state_hot(request: Request) -> Response:
    return await _set_flow_run_state(request, hot.path_uuid(request, "id"), await hot.body(request, SetStateRequest))


async def _set_flow_run_state(request: Request, id: uuid.UUID, body: SetStateRequest) -> Response:
    if body.force:
        await require_scope(request, Scope.DEPLOY)
    db: Database = request.app.state.database
    if db.async_pg is not None:
        result = await model.set_state_async(db, id, body.state, force=body.force)
        if result is None:
            raise _missing(id)
    else:
        result = await run_in_threadpool(_set_state, db, id, body)
    return _json(result, 201 if result.status is SetStateStatus.ACCEPT else 200)


def _set_state(db: Database, id: uuid.UUID, body: SetStateRequest) -> OrchestrationResult:
    with db.session() as session:
        result = model.set_state(session, id, body.state, force=body.force)
        if result is None:
            raise _missing(id)
        return result


@router.post("/{id}/heartbeat", dependencies=[requires(Scope.AGENT)])
def heartbeat_flow_run(id: uuid.UUID, db: Database = Depends(get_db)) -> HeartbeatResponse:
    with db.session() as session:
        run = model.heartbeat(session, id)
        if run is None:
            raise _missing(id)
        return HeartbeatResponse(
            state_type=StateType(run.state_type) if run.state_type else None, state_name=run.state_name
        )


@router.get("/{id}/states", dependencies=[requires(Scope.READ)])
def read_flow_run_states(id: uuid.UUID, db: Database = Depends(get_db)) -> list[State]:
    with db.session(write=False) as session:
        if model.read(session, id) is None:
            raise _missing(id)
        return model.read_states(session, id)
