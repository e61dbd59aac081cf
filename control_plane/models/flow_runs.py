"""Flow runs: create (idempotent), read, filter with keyset pagination, update, delete, and ``set_state``.

``set_state`` is the only writer of a flow run's state. It runs the proposal through the orchestration policy and
writes the outcome with ``UPDATE ... WHERE state_version = :seen``; if another writer got there first the update
matches no row, and the proposal is evaluated again against the fresh state. Two agents claiming the same run
therefore get one ACCEPT and one REJECT, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orch.control_plane import telemetry
from orch.control_plane.db import orm
from orch.control_plane.models import flows as flows_model
from orch.control_plane.models._common import (
    history_row,
    keyset_page,
    state_columns,
    state_from_columns,
    state_of,
    tags_contain_all,
    tags_contain_any,
    where_in,
    where_name,
    where_optional_id,
)
from orch.control_plane.models._names import generate_name
from orch.control_plane.orchestration import OrchestrationContext, RunView, propose
from orch.control_plane.orchestration.policies import CORE_FLOW_POLICY, MINIMAL_POLICY
from orch.control_plane.schemas import flow_runs as schemas
from orch.control_plane.schemas.base import now_utc
from orch.control_plane.schemas.filters import FlowRunFilter, FlowRunSort, StateFilter
from orch.control_plane.schemas.states import (
    ACTIVE_STATES,
    OrchestrationResult,
    SetStateStatus,
    State,
    StateCreate,
    StateType,
)
from orch.control_plane.settings import get_settings
from orch.exceptions import InvalidInput, ObjectNotFound

MAX_CONFLICT_RETRIES = 10


def to_schema(row: orm.FlowRun) -> schemas.FlowRun:
    out = schemas.FlowRun.model_validate(row)
    out.state = state_of(row)
    return out


def create(session: Session, data: schemas.FlowRunCreate) -> tuple[orm.FlowRun, bool]:
    """Create a run (and propose its first state). Returns ``(run, created)``; an existing idempotency key wins."""
    run_id, created = _create(session, data)
    run = session.get(orm.FlowRun, run_id, populate_existing=True)
    assert run is not None
    return run, created


def create_for_api(session: Session, data: schemas.FlowRunCreate) -> tuple[schemas.FlowRun, bool]:
    """``create``, answering the API's schema from one plain read of the row (no ORM object: this is hot)."""
    run_id, created = _create(session, data)
    row = read_row(session, run_id)
    assert row is not None
    return row_to_schema(row), created


def read_row(session: Session, run_id: uuid.UUID) -> dict[str, Any] | None:
    """All of a run's columns as a mapping."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        return _pg.read(conn, run_id, _pg.select_row)
    row = conn.execute(_SELECT_ROW, {"run_id": run_id}).mappings().first()
    return dict(row) if row is not None else None


def row_to_schema(row: dict[str, Any]) -> schemas.FlowRun:
    out = schemas.FlowRun.model_validate(row)
    out.state = state_from_columns(row)
    return out


def _create(session: Session, data: schemas.FlowRunCreate) -> tuple[uuid.UUID, bool]:
    """One INSERT (inside a savepoint only when an idempotency key may collide) and the first state's transition;
    an unknown flow is reported from the foreign-key violation instead of being looked up first."""
    if data.idempotency_key:
        existing = _by_idempotency_key(session, data.flow_id, data.idempotency_key)
        if existing is not None:
            return existing.id, False
    now = now_utc()
    run_id = data.id or uuid.uuid4()
    values = {
        "id": run_id,
        "flow_id": data.flow_id,
        "name": data.name or generate_name(),
        "parameters": data.parameters,
        "tags": list(data.tags),
        "deployment_id": data.deployment_id,
        "work_queue_name": data.work_queue_name,
        "parent_task_run_id": data.parent_task_run_id,
        "idempotency_key": data.idempotency_key,
        "empirical_policy": data.empirical_policy.model_dump(),
        "expected_start_time": now,
        "state_details": {},
        "created": now,
        "updated": now,
    }
    try:
        if data.idempotency_key:
            with session.begin_nested():
                session.connection().execute(_INSERT_RUN, values)
        else:
            session.connection().execute(_INSERT_RUN, values)
    except IntegrityError as exc:
        if data.idempotency_key:
            existing = _by_idempotency_key(session, data.flow_id, data.idempotency_key)
            if existing is not None:
                return existing.id, False
        if "foreign key" in str(exc.orig).lower():
            what = f"Flow {data.flow_id}"
            if data.deployment_id is not None:
                what += f" or deployment {data.deployment_id}"
            raise ObjectNotFound(f"{what} does not exist.") from None
        raise
    telemetry.count(telemetry.RUN_CREATED)
    if data.state is not None:
        result = set_state(session, run_id, data.state)
        assert result is not None
        if result.status is not SetStateStatus.ACCEPT:
            raise InvalidInput(f"The initial state was refused: {result.details.reason}")
    return run_id, True


def _by_idempotency_key(session: Session, flow_id: uuid.UUID, key: str) -> orm.FlowRun | None:
    query = sa.select(orm.FlowRun).where(orm.FlowRun.flow_id == flow_id, orm.FlowRun.idempotency_key == key)
    return session.scalars(query).first()


def read(session: Session, run_id: uuid.UUID) -> orm.FlowRun | None:
    return session.get(orm.FlowRun, run_id)


def update(session: Session, run_id: uuid.UUID, data: schemas.FlowRunUpdate) -> orm.FlowRun | None:
    run = read(session, run_id)
    if run is None:
        return None
    for field in ("name", "parameters", "infrastructure_pid"):
        value = getattr(data, field)
        if value is not None:
            setattr(run, field, value)
    if data.tags is not None:
        run.tags = list(data.tags)
    if data.empirical_policy is not None:
        run.empirical_policy = data.empirical_policy.model_dump()
    session.flush()
    return run


def delete(session: Session, run_id: uuid.UUID) -> bool:
    result = session.execute(sa.delete(orm.FlowRun).where(orm.FlowRun.id == run_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def heartbeat(session: Session, run_id: uuid.UUID) -> orm.FlowRun | None:
    now = now_utc()
    session.execute(
        sa.update(orm.FlowRun).where(orm.FlowRun.id == run_id).values(heartbeat_time=now),
        execution_options={"synchronize_session": False},
    )
    return session.get(orm.FlowRun, run_id, populate_existing=True)


def read_states(session: Session, run_id: uuid.UUID) -> list[State]:
    rows = session.scalars(
        sa.select(orm.FlowRunState)
        .where(orm.FlowRunState.flow_run_id == run_id)
        .order_by(orm.FlowRunState.timestamp, orm.FlowRunState.created)
    )
    return [State.model_validate(row) for row in rows]


# -- state changes -------------------------------------------------------------------------------------------------


_RUNS = cast(sa.Table, orm.FlowRun.__table__)
_STATES = cast(sa.Table, orm.FlowRunState.__table__)
_VIEW_COLUMNS = (
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
    "heartbeat_time",
    "empirical_policy",
    "work_queue_name",
    "updated",
)
_WRITE_COLUMNS = (
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
    "heartbeat_time",
    "updated",
)
# Built once: the hot path of every transition is two statements with cached compiled forms.
_SELECT_VIEW = sa.select(*[_RUNS.c[name] for name in _VIEW_COLUMNS]).where(_RUNS.c.id == sa.bindparam("run_id"))
_UPDATE_STATE = (
    _RUNS.update()
    .where(_RUNS.c.id == sa.bindparam("run_id"), _RUNS.c.state_version == sa.bindparam("seen_version"))
    .values({name: sa.bindparam(name) for name in _WRITE_COLUMNS})
)
_SELECT_ROW = sa.select(_RUNS).where(_RUNS.c.id == sa.bindparam("run_id"))
_INSERT_HISTORY = _STATES.insert()
_INSERT_RUN = _RUNS.insert()


def set_state(
    session: Session,
    run_id: uuid.UUID,
    proposed: StateCreate,
    *,
    force: bool = False,
    now: dt.datetime | None = None,
    late_runs_threshold: float | None = None,
) -> OrchestrationResult | None:
    """Propose a state for a run; ``None`` when the run does not exist.

    ``late_runs_threshold`` overrides the setting (the late-runs service passes the settings it was given).
    """
    threshold = get_settings().late_runs_threshold if late_runs_threshold is None else late_runs_threshold
    policy = MINIMAL_POLICY if force else CORE_FLOW_POLICY
    for _ in range(MAX_CONFLICT_RETRIES):
        row = _read_view(session, run_id)
        if row is None:
            return None
        when = now or now_utc()
        state = State(
            type=proposed.type,
            name=proposed.resolved_name(),
            timestamp=proposed.timestamp or when,
            message=proposed.message,
            state_details=proposed.state_details.model_copy(),
            data=proposed.data,
        )
        view = _view(row)
        ctx = OrchestrationContext(
            kind="flow_run",
            run=view,
            proposed=state,
            now=when,
            late_runs_threshold=threshold,
            queue_usage=lambda queue: queue_usage(session, queue),
        )
        propose(ctx, policy)
        if not ctx.writes:
            telemetry.count(telemetry.TRANSITION_REFUSED)
            return ctx.result()
        if _write(session, run_id, ctx.run, seen_version=row["state_version"], now=when):
            telemetry.count(telemetry.TRANSITION)
            if ctx.proposed.type is StateType.PENDING and ctx.status is SetStateStatus.ACCEPT:
                telemetry.count(telemetry.RUN_CLAIMED)
            if ctx.proposed.type is StateType.SCHEDULED and row["work_queue_name"] is not None:
                from orch.control_plane.services.dispatcher import dispatch_after_commit

                dispatch_after_commit(session, run_id)
            return ctx.result()
    return OrchestrationResult.model_validate(
        {
            "status": "WAIT",
            "state": view.state,
            "details": {"reason": "The run is changing; try again.", "delay_seconds": 0.5},
        }
    )


def _view(row: Any) -> RunView:
    policy = row["empirical_policy"] or {}
    return RunView(
        state=state_from_columns(row),
        state_version=row["state_version"],
        run_count=row["run_count"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        total_run_time=row["total_run_time"],
        expected_start_time=row["expected_start_time"],
        heartbeat_time=row["heartbeat_time"],
        retries=int(policy.get("retries", 0)),
        retry_delay=float(policy.get("retry_delay", 0.0)),
        work_queue_name=row["work_queue_name"],
    )


def _write(session: Session, run_id: uuid.UUID, view: RunView, *, seen_version: int, now: dt.datetime) -> bool:
    assert view.state is not None
    params: dict[str, Any] = {
        **state_columns(view.state),
        "run_id": run_id,
        "seen_version": seen_version,
        "state_version": view.state_version,
        "run_count": view.run_count,
        "start_time": view.start_time,
        "end_time": view.end_time,
        "total_run_time": view.total_run_time,
        "expected_start_time": view.expected_start_time,
        "heartbeat_time": view.heartbeat_time,
        "updated": now,
    }
    history = {"flow_run_id": run_id, **history_row(view.state)}
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        return _pg.write(conn, params, history)
    result = conn.execute(_UPDATE_STATE, params)
    if result.rowcount != 1:
        return False
    conn.execute(_INSERT_HISTORY, history)
    return True


def _read_view(session: Session, run_id: uuid.UUID) -> Any:
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        return _pg.read(conn, run_id, _pg.select_view)
    # Core statements on the session's connection: the ORM's execute path would double the cost of a transition.
    return conn.execute(_SELECT_VIEW, {"run_id": run_id}).mappings().first()


class _PostgresTransition:
    """``set_state``'s two statements on PostgreSQL, sent straight to psycopg as server-side prepared statements.

    Every transition is a read and a write, so their cost is the API's throughput: through SQLAlchemy each
    statement costs ~150 µs of CPU here, through psycopg ~50 µs. The write is one statement, a data-modifying CTE:
    the history row is inserted only when the conditional ``UPDATE`` matched, so the optimistic-concurrency check
    and the history stay one atomic step in one round trip. The values are converted as the ORM's column types do
    (``jsonb`` for JSON columns, UTC for timestamps); the SQLite path keeps the Core statements above.
    """

    def __init__(self) -> None:
        # The SQL is assembled from the tables' own column names once, at import; values are always parameters.
        self.json_columns = {c.name for c in (*_RUNS.columns, *_STATES.columns) if isinstance(c.type, sa.JSON)}
        self.select_view = f"SELECT {', '.join(_VIEW_COLUMNS)} FROM flow_runs WHERE id = %(run_id)s"  # noqa: S608
        columns = ", ".join(c.name for c in _RUNS.columns)
        self.select_row = f"SELECT {columns} FROM flow_runs WHERE id = %(run_id)s"  # noqa: S608
        history_columns = [c.name for c in _STATES.columns]
        assignments = ", ".join(f"{name} = {self._param(name)}" for name in _WRITE_COLUMNS)
        history_values = ", ".join(self._param(name, "h_") for name in history_columns)
        self.write_sql = (
            f"WITH moved AS (UPDATE flow_runs SET {assignments}"  # noqa: S608
            " WHERE id = %(run_id)s AND state_version = %(seen_version)s RETURNING id) "
            f"INSERT INTO flow_run_states ({', '.join(history_columns)}) SELECT {history_values} FROM moved"
        )

    def _param(self, name: str, prefix: str = "") -> str:
        # JSON values are sent as text and cast by the server: most are ``{}`` or ``null``, encoded for free.
        return f"%({prefix}{name})s::jsonb" if name in self.json_columns else f"%({prefix}{name})s"

    def _value(self, name: str, value: Any) -> Any:
        if name not in self.json_columns:
            return value
        if value is None:
            return "null"
        return "{}" if value == {} else json.dumps(value)

    def read(self, conn: sa.Connection, run_id: uuid.UUID, sql: str) -> dict[str, Any] | None:
        from psycopg.rows import dict_row

        with conn.connection.driver_connection.cursor(row_factory=dict_row) as cursor:  # type: ignore[union-attr]
            cursor.execute(sql, {"run_id": run_id}, prepare=True)
            row = cursor.fetchone()
        if row is not None:
            for name, value in row.items():
                if isinstance(value, dt.datetime):
                    row[name] = value.astimezone(dt.UTC)
        return row

    def write(self, conn: sa.Connection, params: dict[str, Any], history: dict[str, Any]) -> bool:
        values = {name: self._value(name, value) for name, value in params.items()}
        for name, value in history.items():
            values[f"h_{name}"] = self._value(name, value)
        with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(self.write_sql, values, prepare=True)
            return cursor.rowcount == 1


_pg = _PostgresTransition()


def queue_usage(session: Session, queue_name: str) -> tuple[int, int | None]:
    """(runs of the queue holding infrastructure, the queue's concurrency limit). Locks the queue row on PostgreSQL
    so that concurrent claims in one queue are counted one after the other."""
    query = sa.select(orm.WorkQueue.concurrency_limit).where(orm.WorkQueue.name == queue_name)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    limit = session.execute(query).scalar_one_or_none()
    if limit is None:
        return 0, None
    active = session.execute(
        sa.select(sa.func.count())
        .select_from(orm.FlowRun)
        .where(
            orm.FlowRun.work_queue_name == queue_name,
            orm.FlowRun.state_type.in_([s.value for s in ACTIVE_STATES]),
        )
    ).scalar_one()
    return int(active), int(limit)


# -- listing -------------------------------------------------------------------------------------------------------

_SORTS: dict[FlowRunSort, tuple[list[Any], bool]] = {
    FlowRunSort.EXPECTED_START_TIME_DESC: ([orm.FlowRun.expected_start_time, orm.FlowRun.id], True),
    FlowRunSort.EXPECTED_START_TIME_ASC: ([orm.FlowRun.expected_start_time, orm.FlowRun.id], False),
    FlowRunSort.CREATED_DESC: ([orm.FlowRun.created, orm.FlowRun.id], True),
    FlowRunSort.CREATED_ASC: ([orm.FlowRun.created, orm.FlowRun.id], False),
    FlowRunSort.UPDATED_DESC: ([orm.FlowRun.updated, orm.FlowRun.id], True),
    FlowRunSort.NAME_ASC: ([orm.FlowRun.name, orm.FlowRun.id], False),
    FlowRunSort.NAME_DESC: ([orm.FlowRun.name, orm.FlowRun.id], True),
}


def filter_(session: Session, flt: FlowRunFilter) -> tuple[list[orm.FlowRun], str | None]:
    """A page of runs and the cursor of the next page (``None`` on the last page)."""
    query = where(session, sa.select(orm.FlowRun), flt)
    columns, descending = _SORTS[flt.sort]
    return keyset_page(session, query, columns, descending, flt)


def count(session: Session, flt: FlowRunFilter) -> int:
    query = where(session, sa.select(sa.func.count()).select_from(orm.FlowRun), flt)
    return int(session.execute(query).scalar_one())


def where(session: Session, query: sa.Select[Any], flt: FlowRunFilter) -> sa.Select[Any]:
    f = flt.flow_runs
    if f is not None:
        query = where_in(query, orm.FlowRun.id, f.id)
        query = where_name(query, orm.FlowRun.name, f.name)
        query = where_in(query, orm.FlowRun.flow_id, f.flow_id)
        query = where_optional_id(query, orm.FlowRun.deployment_id, f.deployment_id)
        query = where_optional_id(query, orm.FlowRun.parent_task_run_id, f.parent_task_run_id)
        query = where_in(query, orm.FlowRun.work_queue_name, f.work_queue_name)
        if f.state is not None:
            query = _state_filter(query, orm.FlowRun, f.state)
        if f.tags is not None:
            if f.tags.all_:
                query = query.where(tags_contain_all(session, orm.FlowRun.tags, f.tags.all_))
            if f.tags.any_:
                query = query.where(tags_contain_any(session, orm.FlowRun.tags, f.tags.any_))
        for name in ("expected_start_time", "start_time", "end_time"):
            tf = getattr(f, name)
            if tf is None:
                continue
            col = getattr(orm.FlowRun, name)
            if tf.after_ is not None:
                query = query.where(col >= tf.after_)
            if tf.before_ is not None:
                query = query.where(col <= tf.before_)
            if tf.is_null_ is not None:
                query = query.where(col.is_(None) if tf.is_null_ else col.is_not(None))
    if flt.flows is not None:
        flow_ids = flows_model.apply_filter(session, sa.select(orm.Flow.id), flt.flows)
        query = query.where(orm.FlowRun.flow_id.in_(flow_ids))
    if flt.deployments is not None:
        dq = sa.select(orm.Deployment.id)
        if flt.deployments.id and flt.deployments.id.any_ is not None:
            dq = dq.where(orm.Deployment.id.in_(flt.deployments.id.any_))
        if flt.deployments.name and flt.deployments.name.any_ is not None:
            dq = dq.where(orm.Deployment.name.in_(flt.deployments.name.any_))
        query = query.where(orm.FlowRun.deployment_id.in_(dq))
    return query


def _state_filter(query: sa.Select[Any], model: Any, sf: StateFilter) -> sa.Select[Any]:
    if sf.type is not None:
        if sf.type.any_ is not None:
            query = query.where(model.state_type.in_([t.value for t in sf.type.any_]))
        if sf.type.not_any_ is not None:
            query = query.where(model.state_type.not_in([t.value for t in sf.type.not_any_]))
    if sf.name is not None and sf.name.any_ is not None:
        query = query.where(model.state_name.in_(sf.name.any_))
    return query


def runs_in_state(
    session: Session, state_type: StateType, *, before: dt.datetime, limit: int = 500
) -> list[orm.FlowRun]:
    """Runs in a state whose ``expected_start_time`` is before ``before`` (used by the late-runs service)."""
    query = (
        sa.select(orm.FlowRun)
        .where(orm.FlowRun.state_type == state_type.value, orm.FlowRun.expected_start_time < before)
        .order_by(orm.FlowRun.expected_start_time)
        .limit(limit)
    )
    return list(session.scalars(query))
