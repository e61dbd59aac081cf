"""The scheduler service: turn deployment schedules into Scheduled runs, a short horizon ahead.

Each tick, for every active schedule of every deployment that is not paused and whose runs the schedule backend
leaves to this service (all of them on the local backend; on EventBridge, those it cannot express), it creates
the runs due between the schedule's ``materialized_until`` (or now, the first time) and ``now + horizon``
(``ORCH_SCHEDULER_HORIZON``, at most ``ORCH_SCHEDULER_MAX_RUNS`` per schedule per tick), then moves
``materialized_until`` forward. Runs are created ahead so the UI shows what is coming; agents start them at
their time (the orchestration rules make an early claim wait). A tick that missed some time (the server was down)
catches up on the next ticks; runs whose time has long passed are then skipped by the late-runs service when the
deployment sets ``max_lateness``.

Every run goes through :func:`orch.control_plane.models.deployments.create_scheduled_run`: creating the same
(deployment, time) twice is a no-op, so ticks may overlap with each other and with EventBridge triggers.

On the EventBridge backend each tick also calls ``reconcile()``, the safety net that repairs the AWS mirror.
:func:`handle_schedule_trigger` is what the schedule Lambda calls when EventBridge fires.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid

import sqlalchemy as sa

from orch.control_plane.db import orm
from orch.control_plane.db.engine import Database
from orch.control_plane.models import deployments as deployments_model
from orch.control_plane.scheduling.backends import ScheduleBackend, ScheduleBackendError, get_backend
from orch.control_plane.scheduling.timetable import next_times
from orch.control_plane.schemas.base import now_utc
from orch.control_plane.settings import ServerSettings

logger = logging.getLogger("orch.control_plane.services.scheduler")


@dataclasses.dataclass
class TickReport:
    created: int = 0
    schedules: int = 0
    reconcile_error: str | None = None


def tick(db: Database, settings: ServerSettings, now: dt.datetime | None = None) -> int:
    """One pass of the scheduler; returns how many runs it created."""
    return run(db, settings, now=now).created


def run(
    db: Database, settings: ServerSettings, *, now: dt.datetime | None = None, backend: ScheduleBackend | None = None
) -> TickReport:
    now = now or now_utc()
    backend = backend or get_backend(settings)
    report = TickReport()
    if backend.name != "local":
        try:
            backend.reconcile(db)
        except ScheduleBackendError as exc:  # AWS trouble must not stop local schedules: log, retry next tick
            logger.warning("schedule reconcile failed: %s", exc)
            report.reconcile_error = str(exc)
    until = now + dt.timedelta(seconds=settings.scheduler_horizon)
    for schedule_id in _due_schedules(db, until):
        with db.session() as session:
            schedule = session.get(orm.DeploymentSchedule, schedule_id)
            if schedule is None or not backend.runs_locally(schedule):
                continue
            report.schedules += 1
            report.created += materialize(session, schedule, now=now, until=until, limit=settings.scheduler_max_runs)
    if report.created:
        logger.info("scheduler created %d runs for %d schedules", report.created, report.schedules)
    return report


def _due_schedules(db: Database, until: dt.datetime) -> list[uuid.UUID]:
    """Active schedules of deployments that are not paused and are not materialized up to ``until`` yet."""
    with db.session(write=False) as session:
        query = (
            sa.select(orm.DeploymentSchedule.id)
            .join(orm.Deployment, orm.Deployment.id == orm.DeploymentSchedule.deployment_id)
            .where(
                orm.DeploymentSchedule.active.is_(True),
                orm.Deployment.paused.is_(False),
                sa.or_(
                    orm.DeploymentSchedule.materialized_until.is_(None),
                    orm.DeploymentSchedule.materialized_until < until,
                ),
            )
            .order_by(orm.DeploymentSchedule.materialized_until, orm.DeploymentSchedule.id)
        )
        return list(session.scalars(query))


def materialize(
    session: sa.orm.Session,
    schedule: orm.DeploymentSchedule,
    *,
    now: dt.datetime,
    until: dt.datetime,
    limit: int,
) -> int:
    """Create the schedule's runs in ``(materialized_until or now, until]``; returns how many were new."""
    after = schedule.materialized_until or now
    spec = deployments_model.spec_of(schedule)
    times = next_times(spec, after, until=until, n=limit)
    created = 0
    for when in times:
        result = deployments_model.create_scheduled_run(session, schedule.deployment_id, when)
        if result is not None and result[1]:
            created += 1
    # Hit the per-tick limit: resume after the last run created; otherwise everything up to `until` is done.
    schedule.materialized_until = times[-1] if len(times) >= limit else until
    session.flush()
    return created


def handle_schedule_trigger(
    db: Database,
    deployment_id: uuid.UUID | str,
    schedule_id: uuid.UUID | str | None,
    scheduled_time: dt.datetime | str,
) -> uuid.UUID | None:
    """What the schedule Lambda calls when an EventBridge schedule fires: the id of the run for
    (deployment, scheduled time) — created now, or the one an earlier delivery created — or ``None`` when the trigger
    is ignored (deployment or schedule deleted, deployment paused, schedule inactive).

    ``scheduled_time`` is EventBridge's ``<aws.scheduler.scheduled-time>`` (ISO 8601, ``Z`` for UTC). Without a
    ``schedule_id`` (a trigger of the deployment as a whole) only the deployment's pause is checked.
    """
    deployment_uuid = uuid.UUID(str(deployment_id))
    schedule_uuid = uuid.UUID(str(schedule_id)) if schedule_id is not None else None
    when = scheduled_time if isinstance(scheduled_time, dt.datetime) else _parse_time(scheduled_time)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    with db.session() as session:
        deployment = deployments_model.read(session, deployment_uuid)
        schedule = deployments_model.read_schedule(session, deployment_uuid, schedule_uuid) if schedule_uuid else None
        if deployment is None or (schedule_uuid is not None and schedule is None):
            logger.info("trigger for a deleted deployment schedule %s/%s ignored", deployment_id, schedule_id)
            return None
        if deployment.paused or (schedule is not None and not schedule.active):
            logger.info("trigger for paused or inactive schedule %s ignored", schedule_id)
            return None
        result = deployments_model.create_scheduled_run(session, deployment_uuid, when)
        if result is None:
            return None
        run, created = result
        if not created:
            logger.info("duplicate trigger for %s at %s: run %s exists", deployment_id, when.isoformat(), run.id)
        return run.id


def _parse_time(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"scheduled_time {text!r} is not an ISO 8601 time") from None
