"""Task runs: recorded in batches by the SDK (client-orchestrated), read and filtered by the UI and CLI.

``record_batch`` upserts task runs by id and appends the states each record carries, checking every new state
against ``CoreTaskPolicy`` in order. It does the whole batch in a handful of statements (one read of the existing
rows, bulk inserts, one UPDATE per changed existing row) because it sits behind every task the SDK runs.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from orch.control_plane.db import orm
from orch.control_plane.models._common import (
    history_row,
    keyset_page,
    state_columns,
    state_of,
    tags_contain_all,
    tags_contain_any,
    where_in,
    where_name,
    where_optional_id,
)
from orch.control_plane.models.flow_runs import _state_filter
from orch.control_plane.orchestration import OrchestrationContext, RunView, propose
from orch.control_plane.orchestration.policies import CORE_TASK_POLICY, MINIMAL_POLICY
from orch.control_plane.schemas import task_runs as schemas
from orch.control_plane.schemas.base import now_utc
from orch.control_plane.schemas.filters import TaskRunFilter, TaskRunSort
from orch.control_plane.schemas.states import OrchestrationResult, State, StateCreate

_TASK_RUNS = cast(sa.Table, orm.TaskRun.__table__)
_TASK_RUN_STATES = cast(sa.Table, orm.TaskRunState.__table__)
_SELECT_EXISTING = sa.select(
    *[
        _TASK_RUNS.c[name]
        for name in (
            "id",
            "state_type",
            "state_name",
            "state_timestamp",
            "state_message",
            "state_details",
            "state_data",
            "state_version",
            "run_count",
            "start_time",
            "end_time",
            "total_run_time",
            "expected_start_time",
            "updated",
        )
    ]
)
_RUN_FIELDS = (
    "state_version",
    "run_count",
    "start_time",
    "end_time",
    "total_run_time",
    "expected_start_time",
)


def to_schema(row: orm.TaskRun) -> schemas.TaskRun:
    out = schemas.TaskRun.model_validate(row)
    out.state = state_of(row)
    return out


def read(session: Session, task_run_id: uuid.UUID) -> orm.TaskRun | None:
    return session.get(orm.TaskRun, task_run_id)


def delete(session: Session, task_run_id: uuid.UUID) -> bool:
    result = session.execute(sa.delete(orm.TaskRun).where(orm.TaskRun.id == task_run_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def create(session: Session, data: schemas.TaskRunCreate) -> orm.TaskRun:
    record = schemas.TaskRunRecord(
        id=data.id or uuid.uuid4(),
        flow_run_id=data.flow_run_id,
        task_key=data.task_key,
        dynamic_key=data.dynamic_key,
        name=data.name or data.task_key,
        tags=data.tags,
        cache_key=data.cache_key,
        cache_expiration=data.cache_expiration,
        task_inputs=data.task_inputs,
        states=[data.state] if data.state else [],
    )
    record_batch(session, [record])
    row = read(session, record.id)
    assert row is not None
    return row


def set_state(
    session: Session, task_run_id: uuid.UUID, proposed: StateCreate, *, force: bool = False
) -> OrchestrationResult | None:
    row = session.get(orm.TaskRun, task_run_id, populate_existing=True)
    if row is None:
        return None
    now = now_utc()
    ctx = _context(_view(row), proposed, now)
    propose(ctx, MINIMAL_POLICY if force else CORE_TASK_POLICY)
    if ctx.writes:
        _flush_existing(session, {row.id: (ctx.run, row.state_version)}, now)
        session.execute(sa.insert(orm.TaskRunState), [{**history_row(ctx.proposed), "task_run_id": row.id}])
    return ctx.result()


def record_batch(session: Session, records: list[schemas.TaskRunRecord]) -> schemas.TaskRunBatchResult:
    """Upsert task runs and append their new states. Refused states are reported, not written."""
    now = now_utc()
    ids = [r.id for r in records]
    conn = session.connection()
    existing = {row.id: row for row in conn.execute(_SELECT_EXISTING.where(_TASK_RUNS.c.id.in_(ids)))} if ids else {}
    views: dict[uuid.UUID, RunView] = {}
    new_records: dict[uuid.UUID, schemas.TaskRunRecord] = {}
    history: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    accepted = 0
    for record in records:
        view = views.get(record.id)
        if view is None:
            row = existing.get(record.id)
            view = views[record.id] = _view(row) if row is not None else RunView(state=None)
            if row is None:
                new_records[record.id] = record
        for proposed in record.states:
            ctx = _context(view, proposed, now)
            propose(ctx, CORE_TASK_POLICY)
            if not ctx.writes:
                rejected.append({"id": str(record.id), "state": proposed.type.value, "reason": ctx.reason})
                break
            history.append({**history_row(ctx.proposed), "task_run_id": record.id})
            accepted += 1
        # The SDK counts attempts itself (a task retried in-process re-enters Running under one task run).
        view.run_count = max(view.run_count, record.run_count)
    new_rows = [_new_row(record, views[run_id], now) for run_id, record in new_records.items()]
    changed = {run_id: (view, 0) for run_id, view in views.items() if run_id not in new_records}
    # Core executemany on the tables: the ORM's bulk-insert bookkeeping would cost more than the rows themselves.
    if new_rows:
        conn.execute(_TASK_RUNS.insert(), new_rows)
    if changed:
        _flush_existing(session, changed, now)
    if history:
        conn.execute(_TASK_RUN_STATES.insert(), history)
    return schemas.TaskRunBatchResult(accepted=accepted, rejected=rejected)


def _context(view: RunView, proposed: StateCreate, now: Any) -> OrchestrationContext:
    # The proposal was validated with the request; build the State without validating (and copying) it again.
    state = State.model_construct(
        id=None,
        type=proposed.type,
        name=proposed.resolved_name(),
        timestamp=proposed.timestamp or now,
        message=proposed.message,
        state_details=proposed.state_details,
        data=proposed.data,
    )
    # Task-run times come from the client that ran the task (the batch arrives later): keep them, but never
    # later than the server's clock.
    return OrchestrationContext(kind="task_run", run=view, proposed=state, now=min(now, state.timestamp))


def _view(row: Any) -> RunView:
    """The orchestration view of an ORM row or a Core row with the same columns."""
    return RunView(
        state=state_of(row),
        state_version=row.state_version,
        run_count=row.run_count,
        start_time=row.start_time,
        end_time=row.end_time,
        total_run_time=row.total_run_time,
        expected_start_time=row.expected_start_time,
    )


def _run_values(view: RunView) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(view, name) for name in _RUN_FIELDS}
    if view.state is not None:
        values.update(state_columns(view.state))
    return values


def _new_row(record: schemas.TaskRunRecord, view: RunView, now: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "created": now,
        "updated": now,
        "flow_run_id": record.flow_run_id,
        "task_key": record.task_key,
        "dynamic_key": record.dynamic_key,
        "name": record.name,
        "tags": list(record.tags),
        "cache_key": record.cache_key,
        "cache_expiration": record.cache_expiration,
        "task_inputs": record.task_inputs,
        "state_type": None,
        "state_name": None,
        "state_timestamp": None,
        "state_message": None,
        "state_details": {},
        "state_data": None,
        **_run_values(view),
    }


def _flush_existing(session: Session, changed: dict[uuid.UUID, tuple[RunView, int]], now: Any) -> None:
    for task_run_id, (view, _seen) in changed.items():
        session.execute(
            sa.update(orm.TaskRun).where(orm.TaskRun.id == task_run_id).values(**_run_values(view), updated=now),
            execution_options={"synchronize_session": False},
        )


def read_states(session: Session, task_run_id: uuid.UUID) -> list[State]:
    rows = session.scalars(
        sa.select(orm.TaskRunState)
        .where(orm.TaskRunState.task_run_id == task_run_id)
        .order_by(orm.TaskRunState.timestamp, orm.TaskRunState.created)
    )
    return [State.model_validate(row) for row in rows]


_SORTS = {
    TaskRunSort.EXPECTED_START_TIME_ASC: False,
    TaskRunSort.EXPECTED_START_TIME_DESC: True,
}


def filter_(session: Session, flt: TaskRunFilter) -> tuple[list[orm.TaskRun], str | None]:
    query = sa.select(orm.TaskRun)
    f = flt.task_runs
    if f is not None:
        query = where_in(query, orm.TaskRun.id, f.id)
        query = where_optional_id(query, orm.TaskRun.flow_run_id, f.flow_run_id)
        query = where_name(query, orm.TaskRun.name, f.name)
        if f.state is not None:
            query = _state_filter(query, orm.TaskRun, f.state)
        if f.tags is not None and f.tags.all_:
            query = query.where(tags_contain_all(session, orm.TaskRun.tags, f.tags.all_))
        if f.tags is not None and f.tags.any_:
            query = query.where(tags_contain_any(session, orm.TaskRun.tags, f.tags.any_))
    descending = _SORTS[flt.sort]
    columns: list[Any] = [orm.TaskRun.expected_start_time, orm.TaskRun.id]
    return keyset_page(session, query, columns, descending, flt)
