"""``/api/flow_runs``: create, read, filter/paginate, update, delete, ``set_state``, heartbeat, history."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Response, status

from orch.control_plane.api.deps import get_db
from orch.control_plane.api.security import Scope, requires
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


@router.post("/", dependencies=[requires(Scope.AGENT)])
def create_flow_run(data: FlowRunCreate, response: Response, db: Database = Depends(get_db)) -> FlowRun:
    """Create a run. With an ``idempotency_key`` already used for the flow, answer the existing run (200)."""
    with db.session() as session:
        run, created = model.create(session, data)
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return model.to_schema(run)


@router.get("/{id}", dependencies=[requires(Scope.READ)])
def read_flow_run(id: uuid.UUID, db: Database = Depends(get_db)) -> FlowRun:
    with db.session(write=False) as session:
        run = model.read(session, id)
        if run is None:
            raise _missing(id)
        return model.to_schema(run)


@router.patch("/{id}", status_code=204, dependencies=[requires(Scope.AGENT)])
def update_flow_run(id: uuid.UUID, data: FlowRunUpdate, db: Database = Depends(get_db)) -> None:
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


@router.post("/{id}/set_state", dependencies=[requires(Scope.AGENT)])
def set_flow_run_state(
    id: uuid.UUID, body: SetStateRequest, response: Response, db: Database = Depends(get_db)
) -> OrchestrationResult:
    """Propose a state. ACCEPT answers 201; REJECT, WAIT and ABORT answer 200 with the reason."""
    with db.session() as session:
        result = model.set_state(session, id, body.state, force=body.force)
        if result is None:
            raise _missing(id)
    response.status_code = 201 if result.status is SetStateStatus.ACCEPT else 200
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
