"""Flow runs: create (idempotent), read, filter with keyset pagination, update, delete, and ``set_state``.

``set_state`` is the only writer of a flow run's state. It runs the proposal through the orchestration policy and
writes the outcome with ``UPDATE ... WHERE state_version = :seen``; if another writer got there first the update
matches no row, and the proposal is evaluated again against the fresh state. Two agents claiming the same run
therefore get one ACCEPT and one REJECT, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orch.control_plane import telemetry
from orch.control_plane.db import orm
from orch.control_plane.db.flow_run_statements import (
    INSERT_HISTORY,
    INSERT_RUN,
    PG,
    ROW_VERSION,
    SELECT_ROW,
    SELECT_VIEW,
    UPDATE_STATE,
    VIEW_COLUMNS,
    WRITE_COLUMNS,
)
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

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from orch.control_plane.db.engine import Database

MAX_CONFLICT_RETRIES = 10
# What the async path remembers of a run it wrote (``AsyncPool.recent``): what a read of the run answers.
VERSIONED_VIEW_COLUMNS = (*VIEW_COLUMNS, ROW_VERSION)
logger = logging.getLogger("orch.control_plane.flow_runs")


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
        return PG.read(conn, run_id, PG.select_row)
    row = conn.execute(SELECT_ROW, {"run_id": run_id}).mappings().first()
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
    values = _create_values(data)
    run_id: uuid.UUID = values["id"]
    try:
        if data.idempotency_key:
            with session.begin_nested():
                session.connection().execute(INSERT_RUN, values)
        else:
            session.connection().execute(INSERT_RUN, values)
    except IntegrityError as exc:
        if data.idempotency_key:
            existing = _by_idempotency_key(session, data.flow_id, data.idempotency_key)
            if existing is not None:
                return existing.id, False
        if "foreign key" in str(exc.orig).lower():
            raise _unknown_flow(data) from None
        raise
    telemetry.count(telemetry.RUN_CREATED)
    if data.state is not None:
        result = set_state(session, run_id, data.state)
        assert result is not None
        _check_initial(result)
    return run_id, True


def _unknown_flow(data: schemas.FlowRunCreate) -> ObjectNotFound:
    what = f"Flow {data.flow_id}"
    if data.deployment_id is not None:
        what += f" or deployment {data.deployment_id}"
    return ObjectNotFound(f"{what} does not exist.")


def _check_initial(result: OrchestrationResult) -> None:
    if result.status is not SetStateStatus.ACCEPT:
        raise InvalidInput(f"The initial state was refused: {result.details.reason}")


def _create_values(data: schemas.FlowRunCreate) -> dict[str, Any]:
    """A new run's columns (``CREATE_COLUMNS``); the others take their defaults."""
    now = now_utc()
    return {
        "id": data.id or uuid.uuid4(),
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
        ctx = _context(row, proposed, when, threshold, lambda queue: queue_usage(session, queue))
        propose(ctx, policy)
        if not ctx.writes:
            return _refused(ctx)
        if _write(session, run_id, ctx.run, seen_version=row["state_version"], now=when):
            if _moved(ctx, row):
                from orch.control_plane.services.dispatcher import dispatch_after_commit

                dispatch_after_commit(session, run_id)
            return ctx.result()
    return _busy(ctx)


def _context(
    row: Any,
    proposed: StateCreate,
    when: dt.datetime,
    threshold: float,
    usage: Callable[[str], tuple[int, int | None]],
) -> OrchestrationContext:
    """A proposal against the run as read: what the rules see, on every path (sync and async alike)."""
    state = State(
        type=proposed.type,
        name=proposed.resolved_name(),
        timestamp=proposed.timestamp or when,
        message=proposed.message,
        state_details=proposed.state_details.model_copy(),
        data=proposed.data,
    )
    return OrchestrationContext(
        kind="flow_run", run=_view(row), proposed=state, now=when, late_runs_threshold=threshold, queue_usage=usage
    )


def _refused(ctx: OrchestrationContext) -> OrchestrationResult:
    telemetry.count(telemetry.TRANSITION_REFUSED)
    return ctx.result()


def _moved(ctx: OrchestrationContext, row: Any) -> bool:
    """Count a written transition; True when the run must be sent to its work queue once the transaction commits."""
    telemetry.count(telemetry.TRANSITION)
    if ctx.proposed.type is StateType.PENDING and ctx.status is SetStateStatus.ACCEPT:
        telemetry.count(telemetry.RUN_CLAIMED)
    return ctx.proposed.type is StateType.SCHEDULED and row["work_queue_name"] is not None


def _busy(ctx: OrchestrationContext) -> OrchestrationResult:
    """Every attempt lost its race: ask the caller to come back (the run is changing under heavy contention)."""
    return OrchestrationResult.model_validate(
        {
            "status": "WAIT",
            "state": ctx.run.state,
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
    params, history = _write_params(run_id, view, seen_version=seen_version, now=now)
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        return PG.write(conn, params, history)
    result = conn.execute(UPDATE_STATE, params)
    if result.rowcount != 1:
        return False
    conn.execute(INSERT_HISTORY, history)
    return True


def _write_params(
    run_id: uuid.UUID, view: RunView, *, seen_version: int, now: dt.datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's new columns (``UPDATE ... WHERE state_version = :seen_version``) and its history row."""
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
    return params, {"flow_run_id": run_id, **history_row(view.state)}


def _read_view(session: Session, run_id: uuid.UUID) -> Any:
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        return PG.read(conn, run_id, PG.select_view)
    # Core statements on the session's connection: the ORM's execute path would double the cost of a transition.
    return conn.execute(SELECT_VIEW, {"run_id": run_id}).mappings().first()


# -- the hot routes on PostgreSQL: the same steps on an async connection --------------------------------------------
#
# ``set_state_async`` and ``create_async`` serve the hot routes on the database's async PostgreSQL connections
# (``db.async_pg``): no hop to a worker thread, no session. They make the same proposals through the same policy,
# write with the same optimistic-concurrency check and history row, count the same telemetry and dispatch after
# commit as ``set_state`` and ``create_for_api`` do. Two things need no transaction around them: the read and the
# write of a transition (the write is one statement, and it applies only to the run as read), and creating a run in
# its first state (one statement). A claim in a work queue does: see ``_QueueUsageNeeded``.
#
# The write applies only to the version of the row that was decided on (PostgreSQL's ``xmin``, which every write of
# the row changes, whoever makes it: a transition, a heartbeat, a PATCH, another worker, a person with psql), and
# it answers the row's new version. Each event loop's pool remembers the run as written, at that version
# (``AsyncPool.recent``; built from the decision, ``_written_view``: parsing the row back would cost as much as the
# read it saves), so the run's next transition through this worker is decided on the remembered row without
# reading it: if the row is still that version, the write applies and a transition took one round trip instead of
# two; if anything wrote the row since, the write matches nothing and the transition reads the run and decides
# again, as it would have without the memory. A refusal decided on a remembered row is never answered: it is
# decided again on a fresh read (a refusal writes nothing, so nothing would have checked the row's version).


class _QueueUsageNeeded(Exception):
    """A rule asked for a work queue's usage during the first evaluation. The usage is then read under the queue
    row's lock, in a transaction that also holds the write, and the proposal evaluated again with it: claims in one
    queue are counted one after the other, as ``queue_usage`` does on the sync path."""

    def __init__(self, queue: str) -> None:
        super().__init__(queue)
        self.queue = queue


class _Twin(Exception):
    """Another request created the run with the same idempotency key first: answer that run."""

    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__(row["id"])
        self.row = row


def _usage_later(queue: str) -> tuple[int, int | None]:
    raise _QueueUsageNeeded(queue)


def _known_usage(usage: tuple[int, int | None], _queue: str) -> tuple[int, int | None]:
    return usage


Write = Callable[[OrchestrationContext, dt.datetime], Awaitable["dict[str, Any] | None"]]


async def set_state_async(
    db: Database, run_id: uuid.UUID, proposed: StateCreate, *, force: bool = False
) -> OrchestrationResult | None:
    """``set_state`` for the hot route on PostgreSQL; ``None`` when the run does not exist."""
    assert db.async_pg is not None
    policy = MINIMAL_POLICY if force else CORE_FLOW_POLICY
    pool = db.async_pg.current()
    remembered = pool.recent.take(run_id)
    async with pool.connection() as conn:
        row = remembered
        for _ in range(MAX_CONFLICT_RETRIES + (remembered is not None)):
            if row is None:
                row = await PG.fetch(conn, PG.select_versioned_view, {"run_id": run_id})
                if row is None:
                    return None
            ctx, written = await _decide(conn, row, proposed, policy, functools.partial(_update, conn, run_id, row))
            if written is not None:  # (``{}``: written, but nothing to remember)
                break
            if not ctx.writes and row is not remembered:
                return _refused(ctx)
            row = None  # lost a race, or the remembered row has changed since (or refuses): read it and decide again
        else:
            return _busy(ctx)
    if written:
        pool.recent.put(run_id, written)
    if _moved(ctx, row):
        await _dispatch_after_commit(db, run_id)
    return ctx.result()


async def create_async(db: Database, data: schemas.FlowRunCreate) -> tuple[schemas.FlowRun, bool]:
    """``create_for_api`` for the hot route on PostgreSQL: (the run, created)."""
    assert db.async_pg is not None
    pool = db.async_pg.current()
    async with pool.connection() as conn:
        if data.idempotency_key:
            existing = await PG.fetch(
                conn, PG.select_row_by_key, {"flow_id": data.flow_id, "key": data.idempotency_key}
            )
            if existing is not None:
                return row_to_schema(existing), False
        values = _create_values(data)
        try:
            if data.state is None:
                row = await _insert(conn, data, PG.insert_sql, PG.values({**values, **PG.defaults}))
                telemetry.count(telemetry.RUN_CREATED)
                return row_to_schema(row), True
            # The first proposal sees the run exactly as ``set_state`` would read it back after a plain INSERT.
            new = {**dict.fromkeys(VIEW_COLUMNS), **PG.defaults, **values}
            ctx, written = await _decide(
                conn, new, data.state, CORE_FLOW_POLICY, functools.partial(_insert_in_state, conn, data, values)
            )
            if not ctx.writes:
                await _refuse_initial(conn, data, values, ctx)
        except _Twin as twin:
            return row_to_schema(twin.row), False
    assert written is not None
    # The run's first transition is written: remember the run as written (its view), for its next one.
    pool.recent.put(written["id"], {name: written[name] for name in VERSIONED_VIEW_COLUMNS})
    telemetry.count(telemetry.RUN_CREATED)
    if _moved(ctx, new):
        await _dispatch_after_commit(db, values["id"])
    return row_to_schema(written), True


async def _decide(
    conn: AsyncConnection, row: dict[str, Any], proposed: StateCreate, policy: Any, write: Write
) -> tuple[OrchestrationContext, dict[str, Any] | None]:
    """Evaluate the proposal and, if the run's state changes, ``write`` it: (the context, the written row or
    ``None`` when the write lost a race)."""
    threshold = get_settings().late_runs_threshold
    when = now_utc()
    ctx = _context(row, proposed, when, threshold, _usage_later)
    try:
        propose(ctx, policy)
        return ctx, (await write(ctx, when) if ctx.writes else None)
    except _QueueUsageNeeded as needed:
        async with conn.transaction():  # the queue row stays locked until the claim is written
            usage = await _queue_usage_async(conn, needed.queue)
            ctx = _context(row, proposed, when, threshold, functools.partial(_known_usage, usage))
            propose(ctx, policy)
            return ctx, (await write(ctx, when) if ctx.writes else None)


async def _update(
    conn: AsyncConnection, run_id: uuid.UUID, row: dict[str, Any], ctx: OrchestrationContext, when: dt.datetime
) -> dict[str, Any] | None:
    """The conditional write of a transition decided on ``row``: ``None`` when the row is no longer the version
    decided on; else the run's view as a read would now answer it (``{}`` when that cannot be told, see
    ``_written_view``)."""
    params, history = _write_params(run_id, ctx.run, seen_version=row["state_version"], now=when)
    params["seen_xmin"] = row[ROW_VERSION]
    version = await PG.scalar(conn, PG.versioned_write_sql, PG.values(params, history))
    return None if version is None else _written_view(row, params, version)


def _written_view(row: dict[str, Any], params: dict[str, Any], version: str) -> dict[str, Any]:
    """The view a read of the run would answer right after the write of ``params`` to ``row``, at ``version``.

    Built from what was decided and written, as PostgreSQL hands it back: the other columns of the view are the
    row's, unchanged (the write applied to that very version); times are UTC, as ``_utc`` makes them. The state's
    details are a dict of strings and booleans, which ``jsonb`` keeps as they are (it may order the keys otherwise:
    a dict compares equal and the rules read it through ``StateDetails``). A state's ``data`` is any JSON, which
    ``jsonb`` may change (key order, ``1e16`` read back as an integer): a run whose state carries data is not
    remembered (``{}``), its next transition reads it. A test compares this view with a read after every write.
    """
    if params["state_data"] is not None:
        return {}
    view = {**row, ROW_VERSION: version}
    for name in WRITE_COLUMNS:
        value = params[name]
        if isinstance(value, dt.datetime) and value.tzinfo is not dt.UTC:
            value = value.astimezone(dt.UTC)
        view[name] = value
    return view


async def _insert_in_state(
    conn: AsyncConnection,
    data: schemas.FlowRunCreate,
    values: dict[str, Any],
    ctx: OrchestrationContext,
    when: dt.datetime,
) -> dict[str, Any]:
    params, history = _write_params(values["id"], ctx.run, seen_version=0, now=when)
    del params["run_id"], params["seen_version"]
    new = PG.values({**values, **PG.defaults, **params}, history)
    return await _insert(conn, data, PG.insert_with_state_sql, new)


async def _insert(
    conn: AsyncConnection, data: schemas.FlowRunCreate, sql: str, params: dict[str, Any]
) -> dict[str, Any]:
    """The INSERT of a new run; its row. Raises ``_Twin`` for an idempotency key already used, and ``ObjectNotFound``
    for an unknown flow or deployment (from the foreign-key violation: nothing is looked up first)."""
    from psycopg import IntegrityError as PgIntegrityError
    from psycopg.errors import ForeignKeyViolation
    from psycopg.pq import TransactionStatus

    try:
        if conn.info.transaction_status == TransactionStatus.INTRANS:
            async with conn.transaction():  # a savepoint: the enclosing transaction stays usable
                row = await PG.fetch(conn, sql, params)
        else:
            row = await PG.fetch(conn, sql, params)
    except PgIntegrityError as exc:
        if data.idempotency_key:
            key = {"flow_id": data.flow_id, "key": data.idempotency_key}
            existing = await PG.fetch(conn, PG.select_row_by_key, key)
            if existing is not None:
                raise _Twin(existing) from None
        if isinstance(exc, ForeignKeyViolation):
            raise _unknown_flow(data) from None
        raise
    assert row is not None
    return row


async def _refuse_initial(
    conn: AsyncConnection, data: schemas.FlowRunCreate, values: dict[str, Any], ctx: OrchestrationContext
) -> None:
    """A refused first state: answer as the sync path, which inserts the run before proposing its state. So an
    unknown flow is still a 404 and a twin still answers its run: the INSERT is tried and always rolled back."""
    async with conn.transaction(force_rollback=True):
        await _insert(conn, data, PG.insert_sql, PG.values({**values, **PG.defaults}))
    telemetry.count(telemetry.RUN_CREATED)
    _check_initial(_refused(ctx))


async def _queue_usage_async(conn: AsyncConnection, queue_name: str) -> tuple[int, int | None]:
    """``queue_usage`` on an async connection: the queue row locked, then its active runs counted."""
    limit = await PG.scalar(conn, PG.queue_limit, {"name": queue_name})
    if limit is None:
        return 0, None
    active = await PG.scalar(conn, PG.queue_active, {"name": queue_name})
    return int(active), int(limit)


async def _dispatch_after_commit(db: Database, run_id: uuid.UUID) -> None:
    """What ``dispatch_after_commit`` does for a session, once the async write has committed."""
    settings = get_settings()
    if settings.run_queue != "sqs":
        return
    from orch.control_plane.services.dispatcher import dispatch_run

    try:
        await asyncio.to_thread(dispatch_run, db, settings, run_id)
    except Exception:  # the services tick retries; the API call that scheduled the run has succeeded
        logger.warning("could not dispatch run %s now; the dispatcher will retry", run_id, exc_info=True)


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
