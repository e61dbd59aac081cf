"""Dispatch due runs to their work queue's SQS queue (only when ``ORCH_RUN_QUEUE=sqs``).

A run is sent when it is Scheduled in a work queue and due within 15 minutes (SQS ``DelaySeconds`` covers the
rest), once per scheduled time: ``flow_runs.dispatched_for`` records the time it was sent for, so a retry that
reschedules the run sends it again. Two paths send: right after the transaction that scheduled the run commits
(``dispatch_after_commit``: pick-up latency stays low) and this service's tick (the safety net: a crash between
commit and send, runs scheduled far ahead coming into range). A duplicate send is harmless: the claim is accepted
once.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from orch.control_plane.db import orm
from orch.control_plane.db.engine import Database
from orch.control_plane.run_queue import MAX_DELAY_SECONDS, delay_until, get_run_queue
from orch.control_plane.schemas.base import now_utc
from orch.control_plane.schemas.states import StateType
from orch.control_plane.settings import ServerSettings, get_settings

logger = logging.getLogger("orch.control_plane.dispatcher")
BATCH = 500
_SESSION_KEY = "orch_dispatch"


def tick(db: Database, settings: ServerSettings, now: dt.datetime | None = None) -> int:
    if settings.run_queue != "sqs":
        return 0
    now = now or now_utc()
    with db.session(write=False) as session:
        ids = list(
            session.scalars(
                sa.select(orm.FlowRun.id)
                .where(
                    orm.FlowRun.state_type == StateType.SCHEDULED.value,
                    orm.FlowRun.work_queue_name.is_not(None),
                    orm.FlowRun.expected_start_time <= now + dt.timedelta(seconds=MAX_DELAY_SECONDS),
                    sa.or_(
                        orm.FlowRun.dispatched_for.is_(None),
                        orm.FlowRun.dispatched_for != orm.FlowRun.expected_start_time,
                    ),
                )
                .order_by(orm.FlowRun.expected_start_time)
                .limit(BATCH)
            )
        )
    return sum(dispatch_run(db, settings, run_id, now=now) for run_id in ids)


def dispatch_run(db: Database, settings: ServerSettings, run_id: uuid.UUID, *, now: dt.datetime | None = None) -> bool:
    """Send one run to its queue if it is due soon and was not sent for this scheduled time; True if sent."""
    from orch.control_plane.models import work_queues

    now = now or now_utc()
    with db.session() as session:
        run = session.get(orm.FlowRun, run_id)
        if run is None or run.state_type != StateType.SCHEDULED.value or run.work_queue_name is None:
            return False
        when = run.expected_start_time
        if run.dispatched_for is not None and run.dispatched_for == when:
            return False
        delay = delay_until(when, now)
        if delay is None:
            return False
        queue = work_queues.ensure(session, run.work_queue_name)
        get_run_queue(settings).enqueue(queue.sqs_queue_url, run.id, delay)
        run.dispatched_for = when
    return True


def dispatch_after_commit(session: Session, run_id: uuid.UUID) -> None:
    """Send ``run_id`` once the session's transaction commits (no-op with the database queue)."""
    if get_settings().run_queue != "sqs":
        return
    session.info.setdefault(_SESSION_KEY, set()).add(run_id)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending: set[uuid.UUID] = session.info.pop(_SESSION_KEY, set())
    if not pending:
        return
    from orch.control_plane.db.engine import get_database

    settings = get_settings()
    db = get_database()
    for run_id in pending:
        try:
            dispatch_run(db, settings, run_id)
        except Exception:  # the services tick retries; the API call that scheduled the run has succeeded
            logger.warning("could not dispatch run %s now; the dispatcher will retry", run_id, exc_info=True)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_SESSION_KEY, None)
