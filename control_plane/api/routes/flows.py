"""``/api/flows``: get-or-create by name, read, filter, delete."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Response, status

from orch.control_plane.api.deps import get_db
from orch.control_plane.api.security import Scope, requires
from orch.control_plane.db.engine import Database
from orch.control_plane.models import flows as model
from orch.control_plane.schemas.filters import FlowFilterRequest
from orch.control_plane.schemas.flows import Flow, FlowCreate, FlowUpdate
from orch.exceptions import ObjectNotFound

router = APIRouter(prefix="/flows", tags=["flows"])


@router.post("/", dependencies=[requires(Scope.AGENT)])
def create_flow(data: FlowCreate, response: Response, db: Database = Depends(get_db)) -> Flow:
    with db.session() as session:
        flow, created = model.get_or_create(session, data)
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Flow.model_validate(flow)


@router.get("/{id}", dependencies=[requires(Scope.READ)])
def read_flow(id: uuid.UUID, db: Database = Depends(get_db)) -> Flow:
    with db.session(write=False) as session:
        flow = model.read(session, id)
        if flow is None:
            raise ObjectNotFound(f"Flow {id} not found.")
        return Flow.model_validate(flow)


@router.get("/name/{name}", dependencies=[requires(Scope.READ)])
def read_flow_by_name(name: str, db: Database = Depends(get_db)) -> Flow:
    with db.session(write=False) as session:
        flow = model.read_by_name(session, name)
        if flow is None:
            raise ObjectNotFound(f"Flow {name!r} not found.")
        return Flow.model_validate(flow)


@router.patch("/{id}", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def update_flow(id: uuid.UUID, data: FlowUpdate, db: Database = Depends(get_db)) -> None:
    with db.session() as session:
        if model.update(session, id, data) is None:
            raise ObjectNotFound(f"Flow {id} not found.")


@router.post("/filter", dependencies=[requires(Scope.READ)])
def filter_flows(flt: FlowFilterRequest | None = None, db: Database = Depends(get_db)) -> list[Flow]:
    flt = flt or FlowFilterRequest()
    with db.session(write=False) as session:
        return [Flow.model_validate(f) for f in model.filter_(session, flt.flows, flt.limit, flt.offset)]


@router.delete("/{id}", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def delete_flow(id: uuid.UUID, db: Database = Depends(get_db)) -> None:
    with db.session() as session:
        if not model.delete(session, id):
            raise ObjectNotFound(f"Flow {id} not found.")
