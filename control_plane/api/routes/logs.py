"""``/api/logs``: append a batch, read a filtered page."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Response

from orch.control_plane.api.deps import get_db
from orch.control_plane.api.routes.flow_runs import NEXT_CURSOR_HEADER
from orch.control_plane.api.security import Scope, requires
from orch.control_plane.db.engine import Database
from orch.control_plane.models import logs as model
from orch.control_plane.schemas.filters import LogFilter
from orch.control_plane.schemas.logs import Log, LogCreate, LogPage

router = APIRouter(prefix="/logs", tags=["logs"])
MAX_BATCH = 10_000


@router.post("/", status_code=201, dependencies=[requires(Scope.AGENT)])
def create_logs(
    logs: list[LogCreate] = Body(..., max_length=MAX_BATCH), db: Database = Depends(get_db)
) -> dict[str, int]:
    with db.session() as session:
        return {"created": model.create_many(session, logs)}


@router.post("/filter", dependencies=[requires(Scope.READ)])
def filter_logs(response: Response, flt: LogFilter | None = None, db: Database = Depends(get_db)) -> list[Log]:
    with db.session(write=False) as session:
        rows, cursor = model.filter_(session, flt or LogFilter())
        if cursor:
            response.headers[NEXT_CURSOR_HEADER] = cursor
        return [Log.model_validate(r) for r in rows]


@router.post("/paginate", dependencies=[requires(Scope.READ)])
def paginate_logs(flt: LogFilter | None = None, db: Database = Depends(get_db)) -> LogPage:
    with db.session(write=False) as session:
        rows, cursor = model.filter_(session, flt or LogFilter())
        return LogPage(results=[Log.model_validate(r) for r in rows], next_cursor=cursor)
