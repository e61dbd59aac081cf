"""Crash detection, on by default: a Running run whose engine has not sent a heartbeat for longer than
``ORCH_HEARTBEAT_TIMEOUT`` is proposed ``Crashed`` (and retried if its flow has retries left — the orchestration
rules turn that Crashed into AwaitingRetry). Engines heartbeat every few seconds while a flow runs.

A run claimed (``Pending``) but not started within ``ORCH_PENDING_TIMEOUT`` is ``Crashed`` too: its agent died
between the claim and the launch, or its infrastructure never came up, and nothing else would ever move it.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from orch.control_plane.db import orm
from orch.control_plane.db.engine import Database
from orch.control_plane.models import flow_runs
from orch.control_plane.schemas.base import now_utc
from orch.control_plane.schemas.states import SetStateStatus, StateCreate, StateType
from orch.control_plane.settings import ServerSettings

BATCH = 500


def tick(db: Database, settings: ServerSettings, now: dt.datetime | None = None) -> int:
    now = now or now_utc()
    cutoff = now - dt.timedelta(seconds=settings.heartbeat_timeout)
    marked = 0
    with db.session() as session:
        stale = list(
            session.execute(
                sa.select(orm.FlowRun.id, orm.FlowRun.heartbeat_time)
                .where(orm.FlowRun.state_type == StateType.RUNNING.value, orm.FlowRun.heartbeat_time < cutoff)
                .limit(BATCH)
            )
        )
        for run_id, last in stale:
            silent = (now - last).total_seconds() if last is not None else settings.heartbeat_timeout
            crashed = StateCreate(
                type=StateType.CRASHED,
                message=f"No heartbeat for {silent:.0f}s (timeout {settings.heartbeat_timeout:.0f}s): "
                "the process running this flow died or lost its connection.",
            )
            result = flow_runs.set_state(session, run_id, crashed, now=now)
            if result is not None and result.status in (SetStateStatus.ACCEPT, SetStateStatus.REJECT):
                marked += int(result.state is not None and result.state.type is not StateType.RUNNING)
        pending_cutoff = now - dt.timedelta(seconds=settings.pending_timeout)
        stuck = list(
            session.execute(
                sa.select(orm.FlowRun.id)
                .where(orm.FlowRun.state_type == StateType.PENDING.value, orm.FlowRun.state_timestamp < pending_cutoff)
                .limit(BATCH)
            ).scalars()
        )
        for run_id in stuck:
            crashed = StateCreate(
                type=StateType.CRASHED,
                message=f"Claimed but not started within {settings.pending_timeout:.0f}s: the agent died after "
                "claiming the run, or its infrastructure never started.",
            )
            result = flow_runs.set_state(session, run_id, crashed, now=now)
            marked += int(result is not None and result.status is SetStateStatus.ACCEPT)
    return marked
