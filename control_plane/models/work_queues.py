"""Work queues and agents: CRUD, the runs waiting in a queue, and agent heartbeats.

A work queue is created on first use (a deployment naming it, an agent polling it), as Prefect users expect; with
the SQS run queue, creating one also creates its SQS queue and dead-letter queue.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orch.control_plane.db import orm
from orch.control_plane.run_queue import get_run_queue
from orch.control_plane.schemas import work_queues as schemas
from orch.control_plane.schemas.base import now_utc
from orch.control_plane.schemas.states import ACTIVE_STATES, StateType
from orch.control_plane.settings import get_settings
from orch.exceptions import ObjectAlreadyExists


def read(session: Session, queue_id: uuid.UUID) -> orm.WorkQueue | None:
    return session.get(orm.WorkQueue, queue_id)


def read_by_name(session: Session, name: str) -> orm.WorkQueue | None:
    return session.scalars(sa.select(orm.WorkQueue).where(orm.WorkQueue.name == name)).first()


def create(session: Session, data: schemas.WorkQueueCreate) -> orm.WorkQueue:
    if read_by_name(session, data.name) is not None:
        raise ObjectAlreadyExists(f"Work queue {data.name!r} already exists.")
    queue_url, dlq_url = get_run_queue(get_settings()).create_queue(data.name)
    queue = orm.WorkQueue(
        name=data.name,
        description=data.description,
        priority=data.priority,
        concurrency_limit=data.concurrency_limit,
        paused=data.paused,
        sqs_queue_url=queue_url,
        sqs_dlq_url=dlq_url,
    )
    try:
        with session.begin_nested():
            session.add(queue)
            session.flush()
    except IntegrityError:
        raise ObjectAlreadyExists(f"Work queue {data.name!r} already exists.") from None
    return queue


def ensure(session: Session, name: str) -> orm.WorkQueue:
    """The queue named ``name``, created with defaults if it does not exist (safe under concurrency)."""
    queue = read_by_name(session, name)
    if queue is not None:
        return queue
    try:
        return create(session, schemas.WorkQueueCreate(name=name))
    except ObjectAlreadyExists:
        found = read_by_name(session, name)
        assert found is not None
        return found


def update(session: Session, queue: orm.WorkQueue, data: schemas.WorkQueueUpdate) -> orm.WorkQueue:
    for field in data.model_fields_set:
        setattr(queue, field, getattr(data, field))
    session.flush()
    return queue


def delete(session: Session, queue: orm.WorkQueue) -> None:
    """Delete the SQS queues first: if that fails the row stays and the delete can be retried."""
    get_run_queue(get_settings()).delete_queue(queue.sqs_queue_url, queue.sqs_dlq_url)
    session.delete(queue)
    session.flush()


def filter_(session: Session, limit: int = 200, offset: int = 0) -> list[orm.WorkQueue]:
    query = sa.select(orm.WorkQueue).order_by(orm.WorkQueue.priority, orm.WorkQueue.name)
    return list(session.scalars(query.limit(limit).offset(offset)))


def read_by_names(session: Session, names: Sequence[str]) -> list[orm.WorkQueue]:
    return list(session.scalars(sa.select(orm.WorkQueue).where(orm.WorkQueue.name.in_(list(names)))))


def due_runs(session: Session, queues: Sequence[orm.WorkQueue], *, now: dt.datetime, limit: int) -> list[orm.FlowRun]:
    """Scheduled runs of the queues whose time has come: the best ``limit`` in the order agents must start them.

    The order is the queue's priority (lower first), then the expected start time, then the id: a run of a
    higher-priority queue comes before every run of a lower one however long that one has waited. Paused queues
    give nothing; a queue with a concurrency limit gives at most its free room (limit minus its active runs).
    Each queue's own best ``min(limit, room)`` runs are read and merged, which always contains the overall best
    ``limit``.
    """
    found: list[tuple[int, orm.FlowRun]] = []
    for queue in queues:
        if queue.paused:
            continue
        room = limit
        if queue.concurrency_limit is not None:
            room = min(limit, max(0, queue.concurrency_limit - count_active(session, queue.name)))
        if room == 0:
            continue
        query = (
            sa.select(orm.FlowRun)
            .where(
                orm.FlowRun.work_queue_name == queue.name,
                orm.FlowRun.state_type == StateType.SCHEDULED.value,
                orm.FlowRun.expected_start_time <= now,
            )
            .order_by(orm.FlowRun.expected_start_time, orm.FlowRun.id)
            .limit(room)
        )
        found.extend((queue.priority, run) for run in session.scalars(query))
    found.sort(key=lambda item: (item[0], item[1].expected_start_time or now, item[1].id))
    return [run for _, run in found[:limit]]


def waiting_runs(session: Session, name: str, *, limit: int = 50) -> list[orm.FlowRun]:
    """Every Scheduled run of the queue (due or not), soonest first: what ``preview`` shows."""
    query = (
        sa.select(orm.FlowRun)
        .where(orm.FlowRun.work_queue_name == name, orm.FlowRun.state_type == StateType.SCHEDULED.value)
        .order_by(orm.FlowRun.expected_start_time, orm.FlowRun.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def count_active(session: Session, name: str) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(orm.FlowRun)
        .where(orm.FlowRun.work_queue_name == name, orm.FlowRun.state_type.in_([s.value for s in ACTIVE_STATES]))
    )
    return int(session.execute(query).scalar_one())


def counts(session: Session, name: str, now: dt.datetime) -> dict[str, int]:
    base = sa.select(sa.func.count()).select_from(orm.FlowRun).where(orm.FlowRun.work_queue_name == name)
    scheduled = orm.FlowRun.state_type == StateType.SCHEDULED.value
    return {
        "waiting": int(session.execute(base.where(scheduled, orm.FlowRun.expected_start_time <= now)).scalar_one()),
        "late": int(session.execute(base.where(scheduled, orm.FlowRun.state_name == "Late")).scalar_one()),
        "active": count_active(session, name),
    }


def touch(session: Session, queues: Sequence[orm.WorkQueue], now: dt.datetime) -> None:
    """Record that an agent polled the queues (``orch work-queue ls`` shows it)."""
    session.execute(
        sa.update(orm.WorkQueue).where(orm.WorkQueue.id.in_([q.id for q in queues])).values(last_polled=now),
        execution_options={"synchronize_session": False},
    )


# -- agents --------------------------------------------------------------------------------------------------------


def agent_heartbeat(session: Session, data: schemas.AgentHeartbeat) -> orm.Agent:
    now = now_utc()
    agent = session.scalars(sa.select(orm.Agent).where(orm.Agent.name == data.name)).first()
    values: dict[str, Any] = {
        "work_queues": list(data.work_queues),
        "infra_type": data.infra_type,
        "hostname": data.hostname,
        "status": data.status,
        "last_seen": now,
    }
    if agent is None:
        try:
            with session.begin_nested():
                agent = orm.Agent(name=data.name, **values)
                session.add(agent)
                session.flush()
            return agent
        except IntegrityError:
            agent = session.scalars(sa.select(orm.Agent).where(orm.Agent.name == data.name)).one()
    for key, value in values.items():
        setattr(agent, key, value)
    session.flush()
    return agent


def agents(session: Session, *, work_queue: str | None = None) -> list[orm.Agent]:
    rows = list(session.scalars(sa.select(orm.Agent).order_by(orm.Agent.last_seen.desc(), orm.Agent.name)))
    if work_queue is not None:
        rows = [a for a in rows if work_queue in (a.work_queues or [])]
    return rows
