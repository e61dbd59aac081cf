"""The reads behind the UI's pages that the model layer has no function for: aggregates and name lookups.

Every query here is bounded (a ``LIMIT`` or a ``GROUP BY`` over an indexed range) and loads columns, not ORM
objects, where a page only shows a few fields: a page makes a fixed number of queries whatever the data size, never
one per row (no lazy loads: the ORM models have no relationships, and names are fetched in one ``IN`` query).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from orch.control_plane.db import orm
from orch.control_plane.schemas.states import StateType

FAILED_TYPES = (StateType.FAILED.value, StateType.CRASHED.value)


def flow_names(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(sa.select(orm.Flow.id, orm.Flow.name).where(orm.Flow.id.in_(wanted)))
    return {r.id: r.name for r in rows}


def deployment_names(session: Session, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(sa.select(orm.Deployment.id, orm.Deployment.name).where(orm.Deployment.id.in_(wanted)))
    return {r.id: r.name for r in rows}


def all_flows(session: Session, limit: int = 500) -> list[tuple[uuid.UUID, str]]:
    rows = session.execute(sa.select(orm.Flow.id, orm.Flow.name).order_by(orm.Flow.name).limit(limit))
    return [(r.id, r.name) for r in rows]


def all_deployments(session: Session, limit: int = 500) -> list[tuple[uuid.UUID, str]]:
    query = (
        sa.select(orm.Deployment.id, orm.Flow.name, orm.Deployment.name)
        .join(orm.Flow, orm.Flow.id == orm.Deployment.flow_id)
        .order_by(orm.Flow.name, orm.Deployment.name)
        .limit(limit)
    )
    return [(r[0], f"{r[1]}/{r[2]}") for r in session.execute(query)]


def state_counts(session: Session, since: dt.datetime) -> dict[str, int]:
    """Runs expected to start since ``since``, by state type (one range scan of the start-time index)."""
    query = (
        sa.select(orm.FlowRun.state_type, sa.func.count())
        .where(orm.FlowRun.expected_start_time >= since)
        .group_by(orm.FlowRun.state_type)
    )
    return {str(state or "NONE"): int(n) for state, n in session.execute(query)}


_RUN_SUMMARY = (
    orm.FlowRun.id,
    orm.FlowRun.name,
    orm.FlowRun.flow_id,
    orm.FlowRun.deployment_id,
    orm.FlowRun.state_type,
    orm.FlowRun.state_name,
    orm.FlowRun.state_message,
    orm.FlowRun.state_timestamp,
    orm.FlowRun.expected_start_time,
    orm.FlowRun.start_time,
    orm.FlowRun.end_time,
    orm.FlowRun.total_run_time,
    orm.FlowRun.work_queue_name,
)


def recent_failures(session: Session, since: dt.datetime, limit: int = 10) -> list[Any]:
    """The latest failed or crashed runs (the (state_type, expected_start_time) index, newest first)."""
    query = (
        sa.select(*_RUN_SUMMARY)
        .where(orm.FlowRun.state_type.in_(FAILED_TYPES), orm.FlowRun.expected_start_time >= since)
        .order_by(orm.FlowRun.expected_start_time.desc())
        .limit(limit)
    )
    return list(session.execute(query))


def late_runs(session: Session, limit: int = 10) -> list[Any]:
    """Runs marked ``Late`` (still Scheduled past their start time), the oldest first."""
    query = (
        sa.select(*_RUN_SUMMARY)
        .where(orm.FlowRun.state_type == StateType.SCHEDULED.value, orm.FlowRun.state_name == "Late")
        .order_by(orm.FlowRun.expected_start_time)
        .limit(limit)
    )
    return list(session.execute(query))


@dataclass
class TaskBar:
    """A task run as the run page's timeline draws it: offsets in percent of the flow run's span."""

    id: uuid.UUID
    name: str
    state_type: str | None
    state_name: str | None
    start: dt.datetime | None
    end: dt.datetime | None
    duration: float | None
    left: float
    width: float
    message: str | None


def task_bars(
    session: Session, flow_run_id: uuid.UUID, *, now: dt.datetime, limit: int = 1000
) -> tuple[list[TaskBar], bool]:
    """The run's task runs in start order (index (flow_run_id, expected_start_time)), placed on one time axis."""
    query = (
        sa.select(
            orm.TaskRun.id,
            orm.TaskRun.name,
            orm.TaskRun.state_type,
            orm.TaskRun.state_name,
            orm.TaskRun.state_message,
            orm.TaskRun.start_time,
            orm.TaskRun.end_time,
            orm.TaskRun.expected_start_time,
        )
        .where(orm.TaskRun.flow_run_id == flow_run_id)
        .order_by(orm.TaskRun.expected_start_time, orm.TaskRun.id)
        .limit(limit + 1)
    )
    rows = list(session.execute(query))
    truncated = len(rows) > limit
    rows = rows[:limit]
    starts = [r.start_time or r.expected_start_time for r in rows if (r.start_time or r.expected_start_time)]
    ends = [r.end_time or now for r in rows if r.start_time]
    if not starts:
        return [
            TaskBar(r.id, r.name, r.state_type, r.state_name, None, None, None, 0, 0, r.state_message) for r in rows
        ], truncated
    t0 = min(starts)
    t1 = max([*ends, *starts])
    span = max((t1 - t0).total_seconds(), 0.001)
    bars = []
    for r in rows:
        start = r.start_time
        end = r.end_time or (now if start else None)
        if start is None:
            bars.append(TaskBar(r.id, r.name, r.state_type, r.state_name, None, None, None, 0, 0, r.state_message))
            continue
        assert end is not None
        duration = max((end - start).total_seconds(), 0.0)
        left = (start - t0).total_seconds() / span * 100
        width = max(duration / span * 100, 0.4)
        bars.append(
            TaskBar(
                r.id,
                r.name,
                r.state_type,
                r.state_name,
                start,
                r.end_time,
                duration,
                round(min(left, 99.6), 3),
                round(min(width, 100 - min(left, 99.6)), 3),
                r.state_message,
            )
        )
    return bars, truncated


def task_state_counts(session: Session, flow_run_id: uuid.UUID) -> dict[str, int]:
    query = (
        sa.select(orm.TaskRun.state_type, sa.func.count())
        .where(orm.TaskRun.flow_run_id == flow_run_id)
        .group_by(orm.TaskRun.state_type)
    )
    return {str(s or "NONE"): int(n) for s, n in session.execute(query)}


def subflow_runs(session: Session, flow_run_id: uuid.UUID, limit: int = 200) -> list[Any]:
    """Flow runs started by one of this run's task runs (index on ``parent_task_run_id``)."""
    parents = sa.select(orm.TaskRun.id).where(orm.TaskRun.flow_run_id == flow_run_id)
    query = (
        sa.select(*_RUN_SUMMARY)
        .where(orm.FlowRun.parent_task_run_id.in_(parents))
        .order_by(orm.FlowRun.expected_start_time, orm.FlowRun.id)
        .limit(limit)
    )
    return list(session.execute(query))


def parent_run(session: Session, parent_task_run_id: uuid.UUID | None) -> tuple[uuid.UUID, str] | None:
    """The flow run (id, name) whose task run started a subflow run."""
    if parent_task_run_id is None:
        return None
    query = (
        sa.select(orm.FlowRun.id, orm.FlowRun.name)
        .join(orm.TaskRun, orm.TaskRun.flow_run_id == orm.FlowRun.id)
        .where(orm.TaskRun.id == parent_task_run_id)
    )
    row = session.execute(query).first()
    return (row[0], row[1]) if row else None


def flows_overview(session: Session, limit: int = 500) -> list[Any]:
    """Each flow with its deployment count and its latest run (correlated subqueries on the per-flow index)."""
    latest = (
        sa.select(orm.FlowRun.id)
        .where(orm.FlowRun.flow_id == orm.Flow.id)
        .order_by(orm.FlowRun.expected_start_time.desc())
        .limit(1)
        .correlate(orm.Flow)
        .scalar_subquery()
    )
    deployments = (
        sa.select(sa.func.count())
        .select_from(orm.Deployment)
        .where(orm.Deployment.flow_id == orm.Flow.id)
        .correlate(orm.Flow)
        .scalar_subquery()
    )
    query = (
        sa.select(orm.Flow.id, orm.Flow.name, orm.Flow.tags, orm.Flow.created, latest.label("latest_run_id"))
        .add_columns(deployments.label("deployments"))
        .order_by(orm.Flow.name)
        .limit(limit)
    )
    rows = list(session.execute(query))
    run_ids = [r.latest_run_id for r in rows if r.latest_run_id is not None]
    latest_runs: dict[uuid.UUID, Any] = {}
    if run_ids:
        for run in session.execute(sa.select(*_RUN_SUMMARY).where(orm.FlowRun.id.in_(run_ids))):
            latest_runs[run.id] = run
    return [
        {
            "id": r.id,
            "name": r.name,
            "tags": r.tags or [],
            "created": r.created,
            "deployments": int(r.deployments or 0),
            "latest": latest_runs.get(r.latest_run_id),
        }
        for r in rows
    ]


def run_counts_by_deployment(session: Session, ids: list[uuid.UUID], since: dt.datetime) -> dict[uuid.UUID, int]:
    if not ids:
        return {}
    query = (
        sa.select(orm.FlowRun.deployment_id, sa.func.count())
        .where(orm.FlowRun.deployment_id.in_(ids), orm.FlowRun.expected_start_time >= since)
        .group_by(orm.FlowRun.deployment_id)
    )
    return {d: int(n) for d, n in session.execute(query) if d is not None}
