"""Late runs: a run still Scheduled past its start by the lateness threshold becomes ``Late``; a deployment's run
later than the deployment's ``max_lateness`` is not started at all but ``Cancelled`` with the name ``Skipped``.

Skipping comes first, so a run that is both is skipped rather than marked Late and then skipped. Only runs that
never started are skipped (``run_count == 0``, named Scheduled or Late): a retry waiting in ``AwaitingRetry`` keeps
its chance. Every proposal goes through the orchestration rules like any other (``OnlyLateWhenLate`` refuses
Late too early; a run claimed at the same moment has left Scheduled and the skip is refused), so a run claimed
at the same moment simply stays claimed.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from orch.control_plane.db import orm
from orch.control_plane.db.engine import Database
from orch.control_plane.models import flow_runs
from orch.control_plane.schemas.base import now_utc
from orch.control_plane.schemas.states import SetStateStatus, StateCreate, StateDetails, StateType
from orch.control_plane.settings import ServerSettings

BATCH = 500


def tick(db: Database, settings: ServerSettings, now: dt.datetime | None = None) -> int:
    """Skip runs past their deployment's ``max_lateness``, mark every other overdue Scheduled run Late; returns
    how many runs changed state."""
    now = now or now_utc()
    cutoff = now - dt.timedelta(seconds=settings.late_runs_threshold)
    marked = 0
    with db.session() as session:
        marked += skip_too_late(session, now)
        candidates = flow_runs.runs_in_state(session, StateType.SCHEDULED, before=cutoff, limit=BATCH)
        for run in candidates:
            if run.state_name == "Late":
                continue
            late = StateCreate(
                type=StateType.SCHEDULED,
                name="Late",
                state_details=StateDetails(scheduled_time=run.expected_start_time),
            )
            result = flow_runs.set_state(
                session, run.id, late, now=now, late_runs_threshold=settings.late_runs_threshold
            )
            if result is not None and result.status is SetStateStatus.ACCEPT:
                marked += 1
    return marked


def skip_too_late(session: Session, now: dt.datetime) -> int:
    """Cancel (``Skipped``) the never-started runs of deployments with ``max_lateness`` that are later than that."""
    deployments = session.execute(
        sa.select(orm.Deployment.id, orm.Deployment.max_lateness).where(orm.Deployment.max_lateness.is_not(None))
    ).all()
    skipped = 0
    for deployment_id, max_lateness in deployments:
        assert max_lateness is not None  # filtered in the query
        cutoff = now - dt.timedelta(seconds=float(max_lateness))
        runs = session.scalars(
            sa.select(orm.FlowRun)
            .where(
                orm.FlowRun.deployment_id == deployment_id,
                orm.FlowRun.state_type == StateType.SCHEDULED.value,
                orm.FlowRun.state_name.in_(["Scheduled", "Late"]),
                orm.FlowRun.run_count == 0,
                orm.FlowRun.expected_start_time < cutoff,
            )
            .order_by(orm.FlowRun.expected_start_time)
            .limit(BATCH)
        ).all()
        for run in runs:
            assert run.expected_start_time is not None
            late_by = (now - run.expected_start_time).total_seconds()
            skip = StateCreate(
                type=StateType.CANCELLED,
                name="Skipped",
                message=(
                    f"Skipped: the run was {late_by:.0f}s late, more than the deployment's max_lateness of "
                    f"{float(max_lateness):g}s."
                ),
            )
            result = flow_runs.set_state(session, run.id, skip, now=now)
            if result is not None and result.status is SetStateStatus.ACCEPT:
                skipped += 1
    return skipped
