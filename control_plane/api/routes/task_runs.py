"""``/api/task_runs``: batch recording (the SDK's path), single create, read, filter, ``set_state``, history.

The batch is also served as a hot route (``api/hot.py``): the same scope check, validation and model call, without
FastAPI's per-request machinery; the FastAPI route documents it and serves it where hot routes are not installed.
"""

from __future__ import annotations

import uuid
from typing import Any

import pydantic
from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from orch.control_plane.api.deps import get_db
from orch.control_plane.api.hot import body_error, hot_route
from orch.control_plane.api.routes.flow_runs import NEXT_CURSOR_HEADER
from orch.control_plane.api.security import Scope, requires
from orch.control_plane.db.engine import Database
from orch.control_plane.models import task_runs as model
from orch.control_plane.schemas.filters import TaskRunFilter
from orch.control_plane.schemas.states import OrchestrationResult, SetStateRequest, SetStateStatus, State
from orch.control_plane.schemas.task_runs import (
    TASK_RUN_BATCH,
    TaskRun,
    TaskRunBatchResult,
    TaskRunCreate,
    TaskRunRecord,
)
from orch.exceptions import ObjectNotFound

router = APIRouter(prefix="/task_runs", tags=["task runs"])


def _missing(id: uuid.UUID) -> ObjectNotFound:
    return ObjectNotFound(f"Task run {id} not found.")


async def _batch_body(request: Request) -> list[TaskRunRecord]:
    """The batch validated straight from the request's bytes: one pass, without the intermediate dicts and lists of
    ``json.loads`` (a batch carries thousands of states). Errors are FastAPI's 422."""
    try:
        return TASK_RUN_BATCH.validate_json(await request.body())["task_runs"]
    except pydantic.ValidationError as exc:
        raise body_error(exc) from None


def _inline_refs(schema: Any, definitions: dict[str, Any]) -> Any:
    """``schema`` with its ``$ref``s to ``definitions`` replaced by the definitions (OpenAPI of one operation)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return _inline_refs(definitions[ref.rsplit("/", 1)[-1]], definitions)
        return {key: _inline_refs(value, definitions) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [_inline_refs(item, definitions) for item in schema]
    return schema


_BATCH_SCHEMA = TASK_RUN_BATCH.json_schema()
_BATCH_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline_refs(_BATCH_SCHEMA, _BATCH_SCHEMA.get("$defs", {}))}},
    }
}


@router.post("/batch", dependencies=[requires(Scope.AGENT)], openapi_extra=_BATCH_OPENAPI)
def record_task_runs(
    records: list[TaskRunRecord] = Depends(_batch_body), db: Database = Depends(get_db)
) -> TaskRunBatchResult:
    """Upsert task runs and append their states (checked against the task-run policy, in order)."""
    return _record(db, records)


@hot_route("/task_runs/batch", Scope.AGENT)
async def _record_task_runs_hot(request: Request) -> Response:
    result = await run_in_threadpool(_record, request.app.state.database, await _batch_body(request))
    return Response(result.model_dump_json(), media_type="application/json")


def _record(db: Database, records: list[TaskRunRecord]) -> TaskRunBatchResult:
    with db.session() as session:
        return model.record_batch(session, records)


@router.post("/", status_code=201, dependencies=[requires(Scope.AGENT)])
def create_task_run(data: TaskRunCreate, db: Database = Depends(get_db)) -> TaskRun:
    with db.session() as session:
        return model.to_schema(model.create(session, data))


@router.get("/{id}", dependencies=[requires(Scope.READ)])
def read_task_run(id: uuid.UUID, db: Database = Depends(get_db)) -> TaskRun:
    with db.session(write=False) as session:
        row = model.read(session, id)
        if row is None:
            raise _missing(id)
        return model.to_schema(row)


@router.delete("/{id}", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def delete_task_run(id: uuid.UUID, db: Database = Depends(get_db)) -> None:
    with db.session() as session:
        if not model.delete(session, id):
            raise _missing(id)


@router.post("/filter", dependencies=[requires(Scope.READ)])
def filter_task_runs(
    response: Response, flt: TaskRunFilter | None = None, db: Database = Depends(get_db)
) -> list[TaskRun]:
    with db.session(write=False) as session:
        rows, cursor = model.filter_(session, flt or TaskRunFilter())
        if cursor:
            response.headers[NEXT_CURSOR_HEADER] = cursor
        return [model.to_schema(r) for r in rows]


@router.post("/{id}/set_state", dependencies=[requires(Scope.AGENT)])
def set_task_run_state(
    id: uuid.UUID, body: SetStateRequest, response: Response, db: Database = Depends(get_db)
) -> OrchestrationResult:
    with db.session() as session:
        result = model.set_state(session, id, body.state, force=body.force)
        if result is None:
            raise _missing(id)
    response.status_code = 201 if result.status is SetStateStatus.ACCEPT else 200
    return result


@router.get("/{id}/states", dependencies=[requires(Scope.READ)])
def read_task_run_states(id: uuid.UUID, db: Database = Depends(get_db)) -> list[State]:
    with db.session(write=False) as session:
        states = model.read_states(session, id)
    if states is None:
        raise _missing(id)
    return states
