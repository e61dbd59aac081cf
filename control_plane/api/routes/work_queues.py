"""``/api/work_queues``: CRUD, pause/resume, ``get_runs`` (the database queue's long poll, of one queue or of several
in priority order), preview and status."""

from __future__ import annotations

import asyncio
import time
import uuid

from fastapi import APIRouter, Depends, Path, status
from starlette.concurrency import run_in_threadpool

from orch.control_plane.api.deps import get_db
from orch.control_plane.api.security import Scope, requires
from orch.control_plane.db.engine import Database
from orch.control_plane.models import flow_runs as runs_model
from orch.control_plane.models import work_queues as model
from orch.control_plane.run_queue import get_run_queue
from orch.control_plane.schemas.base import now_utc
from orch.control_plane.schemas.filters import FlowFilterRequest
from orch.control_plane.schemas.flow_runs import FlowRun
from orch.control_plane.schemas.work_queues import (
    Agent,
    GetRunsRequest,
    GetRunsResponse,
    WorkQueue,
    WorkQueueCreate,
    WorkQueuesGetRunsRequest,
    WorkQueueStatus,
    WorkQueueUpdate,
)
from orch.control_plane.settings import get_settings
from orch.exceptions import ObjectNotFound

router = APIRouter(prefix="/work_queues", tags=["work queues"])
# Same rule as WorkQueueCreate's names: a get_runs call may create the queue.
QueueName = Path(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _missing(ref: object) -> ObjectNotFound:
    return ObjectNotFound(f"Work queue {ref} not found.")


@router.post("/", status_code=status.HTTP_201_CREATED, dependencies=[requires(Scope.DEPLOY)])
def create_work_queue(data: WorkQueueCreate, db: Database = Depends(get_db)) -> WorkQueue:
    with db.session() as session:
        return WorkQueue.model_validate(model.create(session, data))


@router.get("/{id}", dependencies=[requires(Scope.READ)])
def read_work_queue(id: uuid.UUID, db: Database = Depends(get_db)) -> WorkQueue:
    with db.session(write=False) as session:
        queue = model.read(session, id)
        if queue is None:
            raise _missing(id)
        return WorkQueue.model_validate(queue)


@router.get("/name/{name}", dependencies=[requires(Scope.READ)])
def read_work_queue_by_name(name: str = QueueName, db: Database = Depends(get_db)) -> WorkQueue:
    with db.session(write=False) as session:
        queue = model.read_by_name(session, name)
        if queue is None:
            raise _missing(repr(name))
        return WorkQueue.model_validate(queue)


@router.patch("/{id}", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def update_work_queue(id: uuid.UUID, data: WorkQueueUpdate, db: Database = Depends(get_db)) -> None:
    with db.session() as session:
        queue = model.read(session, id)
        if queue is None:
            raise _missing(id)
        model.update(session, queue, data)


@router.post("/{id}/pause", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def pause_work_queue(id: uuid.UUID, db: Database = Depends(get_db)) -> None:
    update_work_queue(id, WorkQueueUpdate(paused=True), db)


@router.post("/{id}/resume", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def resume_work_queue(id: uuid.UUID, db: Database = Depends(get_db)) -> None:
    update_work_queue(id, WorkQueueUpdate(paused=False), db)


@router.delete("/{id}", status_code=204, dependencies=[requires(Scope.DEPLOY)])
def delete_work_queue(id: uuid.UUID, db: Database = Depends(get_db)) -> None:
    with db.session() as session:
        queue = model.read(session, id)
        if queue is None:
            raise _missing(id)
        model.delete(session, queue)


@router.post("/filter", dependencies=[requires(Scope.READ)])
def filter_work_queues(flt: FlowFilterRequest | None = None, db: Database = Depends(get_db)) -> list[WorkQueue]:
    flt = flt or FlowFilterRequest()
    with db.session(write=False) as session:
        return [WorkQueue.model_validate(q) for q in model.filter_(session, flt.limit, flt.offset)]


# Not shadowed: ``/{name}/get_runs`` needs two segments and the ``/{id}`` routes take no POST (Starlette prefers the
# route matching path and method); the API tests pin it.
@router.post("/get_runs", dependencies=[requires(Scope.AGENT)])
async def get_runs_of_queues(body: WorkQueuesGetRunsRequest, db: Database = Depends(get_db)) -> GetRunsResponse:
    """Due runs of several queues in the order an agent must start them: higher-priority queues (lower number)
    first, then the longest-waiting; waits up to ``wait_seconds`` for one to become due.

    Paused queues and queues at their concurrency limit give nothing; queues that do not exist are created, as by
    the per-queue call. An agent polling several queues asks this for at most its free room, so a free slot always
    goes to the best run that is due at that moment.
    """
    return await _long_poll(db, list(dict.fromkeys(body.work_queue_names)), body)


@router.post("/{name}/get_runs", dependencies=[requires(Scope.AGENT)])
async def get_runs(
    body: GetRunsRequest | None = None, name: str = QueueName, db: Database = Depends(get_db)
) -> GetRunsResponse:
    """Runs of the queue that are due now, oldest first; waits up to ``wait_seconds`` for one to become due.

    The queue is created if it does not exist (an agent may start before anything is deployed to it).
    """
    return await _long_poll(db, [name], body or GetRunsRequest())


async def _long_poll(db: Database, names: list[str], body: GetRunsRequest) -> GetRunsResponse:
    interval = get_settings().get_runs_poll_interval
    deadline = time.monotonic() + body.wait_seconds
    first = True
    while True:
        runs = await run_in_threadpool(_due_runs, db, names, body.limit, first)
        first = False
        if runs or time.monotonic() >= deadline:
            return GetRunsResponse(runs=runs)
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def _due_runs(db: Database, names: list[str], limit: int, touch: bool) -> list[FlowRun]:
    """One look for due runs; the first look of a poll creates missing queues and records the poll time."""
    now = now_utc()
    with db.session(write=touch) as session:
        if touch:
            # Sorted: concurrent polls of overlapping queue sets create and lock queues in the same order.
            queues = [model.ensure(session, name) for name in sorted(names)]
            model.touch(session, queues, now)
        else:
            queues = model.read_by_names(session, names)
        return [runs_model.to_schema(r) for r in model.due_runs(session, queues, now=now, limit=limit)]


@router.get("/{name}/preview", dependencies=[requires(Scope.READ)])
def preview_work_queue(name: str = QueueName, limit: int = 50, db: Database = Depends(get_db)) -> list[FlowRun]:
    """The runs waiting in the queue (due or scheduled for later), soonest first."""
    with db.session(write=False) as session:
        if model.read_by_name(session, name) is None:
            raise _missing(repr(name))
        return [runs_model.to_schema(r) for r in model.waiting_runs(session, name, limit=min(max(1, limit), 500))]


@router.get("/{name}/status", dependencies=[requires(Scope.READ)])
def work_queue_status(name: str = QueueName, db: Database = Depends(get_db)) -> WorkQueueStatus:
    """Counts of waiting, late and active runs, the agents polling it, and dead letters (SQS)."""
    with db.session(write=False) as session:
        queue = model.read_by_name(session, name)
        if queue is None:
            raise _missing(repr(name))
        counts = model.counts(session, name, now_utc())
        agents = [Agent.model_validate(a) for a in model.agents(session, work_queue=name)]
        out = WorkQueue.model_validate(queue)
    dead, samples = get_run_queue(get_settings()).dead_letters(out.sqs_dlq_url)
    return WorkQueueStatus(work_queue=out, dead_letters=dead, dead_letter_samples=samples, agents=agents, **counts)
