"""Mark runs Late: a run still Scheduled past its start by the lateness threshold becomes ``Late``.

The proposal goes through the orchestration rules like any other (``OnlyLateWhenLate`` refuses it early), so a run
claimed at the same moment simply stays claimed.
"""

from __future__ import annotations

import datetime as dt

from orch.control_plane.db.engine import Database
from orch.control_plane.models import flow_runs
from orch.control_plane.schemas.base import now_utc
from orch.control_plane.schemas.states import SetStateStatus, StateCreate, StateDetails, StateType
from orch.control_plane.settings import ServerSettings

BATCH = 500


def tick(db: Database, settings: ServerSettings, now: dt.datetime | None = None) -> int:
    """Mark every overdue Scheduled run Late; returns how many were marked."""
    now = now or now_utc()
    cutoff = now - dt.timedelta(seconds=settings.late_runs_threshold)
    marked = 0
    with db.session() as session:
        candidates = flow_runs.runs_in_state(session, StateType.SCHEDULED, before=cutoff, limit=BATCH)
        for run in candidates:
            if run.state_name == "Late":
                continue
            late = StateCreate(
                type=StateType.SCHEDULED,
                name="Late",
                state_details=StateDetails(scheduled_time=run.expected_start_time),
            )
            result = flow_runs.set_state(session, run.id, late, now=now)
            if result is not None and result.status is SetStateStatus.ACCEPT:
                marked += 1
    return marked
