"""Task runs: recorded in batches by the SDK (client-orchestrated), read and filtered by the UI and CLI.

A task run is one row of ``task_runs``. Its current state is denormalised on the row like a flow run's; its whole
history is kept on the row too, as a JSON list (``state_history``): a task run has a handful of states, read only
together, so recording a task run writes one row instead of one per state.

``record_batch`` sits behind every task the SDK runs. It works in rounds of ``_ROUND`` records: one ``SELECT`` of
the round's known rows, every new state checked against ``CoreTaskPolicy`` in order (in Python, on the stored
history), then one ``INSERT`` executemany for the new task runs and one ``UPDATE`` executemany for the known ones.
A record's ``state_offset`` says where its states start in the history: states already held there are skipped, so
a batch sent twice is recorded once.
"""

from __future__ import annotations

import datetime as dt
import uuid
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from orch.control_plane.db import orm
from orch.control_plane.models._bulk import DriverBulk, Times, driver_cursor
from orch.control_plane.models._common import (
    STATE_TYPE_VALUES,
    details_json,
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
from orch.control_plane.orchestration import OrchestrationContext, Policy, RunView, propose
from orch.control_plane.orchestration.policies import CORE_TASK_POLICY, MINIMAL_POLICY
from orch.control_plane.schemas import task_runs as schemas
from orch.control_plane.schemas.base import assume_utc, now_utc
from orch.control_plane.schemas.filters import TaskRunFilter, TaskRunSort
from orch.control_plane.schemas.states import (
    DEFAULT_NAMES,
    OrchestrationResult,
    State,
    StateCreate,
    StateDetails,
    StateType,
)
from orch.exceptions import InvalidInput

_TASK_RUNS = cast(sa.Table, orm.TaskRun.__table__)
_C = _TASK_RUNS.c
_RUN_FIELDS = orm.RUN_BOOKKEEPING_COLUMNS
_STATE_COLUMNS = orm.STATE_COLUMNS
_NO_STATE: dict[str, Any] = {
    "state_type": None,
    "state_name": None,
    "state_timestamp": None,
    "state_message": None,
    "state_details": {},
    "state_data": None,
}
# What orchestrating a known task run needs: its current state, bookkeeping and history. FOR UPDATE (PostgreSQL):
# the history read is extended and written back; a concurrent writer waits. Built once: a statement's cache key is
# computed once per statement object.
_SELECT_EXISTING = sa.select(*[_C[name] for name in ("id", *_STATE_COLUMNS, *_RUN_FIELDS, "updated", "state_history")])
_SELECT_ONE = _SELECT_EXISTING.where(_C.id == sa.bindparam("id")).with_for_update()
_SELECT_SOME = _SELECT_EXISTING.where(_C.id.in_(sa.bindparam("ids", expanding=True))).with_for_update()
_UPDATE_EXISTING = _TASK_RUNS.update().where(_C.id == sa.bindparam("_id"))


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
    record: schemas.TaskRunRecord = {
        "id": data.id or uuid.uuid4(),
        "flow_run_id": data.flow_run_id,
        "task_key": data.task_key,
        "dynamic_key": data.dynamic_key,
        "name": data.name or data.task_key,
        "tags": data.tags,
        "cache_key": data.cache_key,
        "cache_expiration": data.cache_expiration,
        "task_inputs": data.task_inputs,
        "states": [schemas.recorded_state(data.state)] if data.state else [],
    }
    record_batch(session, [record])
    row = read(session, record["id"])
    assert row is not None
    return row


def set_state(
    session: Session, task_run_id: uuid.UUID, proposed: StateCreate, *, force: bool = False
) -> OrchestrationResult | None:
    """Propose one state (the API's ``set_state``): through ``CoreTaskPolicy``, or only the bookkeeping when forced;
    an accepted state is appended to the history."""
    conn = session.connection()
    row = conn.execute(_SELECT_ONE, {"id": task_run_id}).one_or_none()
    if row is None:
        return None
    now = now_utc()
    view = _view(row)
    ctx = _orchestrate(view, schemas.recorded_state(proposed), now, MINIMAL_POLICY if force else CORE_TASK_POLICY)
    if ctx.writes:
        history = [*row.state_history, _entry(ctx.proposed)]
        conn.execute(_UPDATE_EXISTING, [_update_row(task_run_id, view, history, now)])
    return ctx.result()


# Records written per round (read, orchestrate, write): the rows and histories of a round are dropped before the
# next one, instead of thousands of them outliving several collections of the garbage collector, which would then
# keep rescanning them (and the whole heap) for the rest of the batch.
_ROUND = 100


def record_batch(session: Session, records: Sequence[schemas.TaskRunRecord]) -> schemas.TaskRunBatchResult:
    """Upsert task runs and append their new states. Refused states are reported, not written; states the run's
    history already holds at the record's ``state_offset`` are skipped (and counted as accepted)."""
    now = now_utc()
    conn = session.connection()
    result = schemas.TaskRunBatchResult(accepted=0)
    for start in range(0, len(records), _ROUND):
        # A run that appears again in a later round is read back from the row the earlier round wrote.
        _record_round(conn, records[start : start + _ROUND], now, result)
    return result


def _record_round(
    conn: sa.Connection, records: Sequence[schemas.TaskRunRecord], now: dt.datetime, result: schemas.TaskRunBatchResult
) -> None:
    ids = _known_ids(conn, [r["id"] for r in records])
    # Keyed by the ids' integers: a UUID hashes in Python code, an int in C (a round looks each id up ~5 times).
    existing = {row.id.int: row for row in conn.execute(_SELECT_SOME, {"ids": ids})} if ids else {}
    known: dict[int, tuple[uuid.UUID, RunView, list[dict[str, Any]]]] = {}
    new_rows: dict[int, dict[str, Any]] = {}
    first_records: dict[int, schemas.TaskRunRecord] = {}
    changed: set[int] = set()
    # The states' times as SQLite text, noted while their history entries are formatted (see ``_entry``).
    times: Times | None = {} if conn.dialect.name == "sqlite" else None
    rejected = result.rejected
    accepted = 0
    for record in records:
        run_id = record["id"]
        key = run_id.int
        first = False
        run = known.get(key)
        if run is not None:
            view, history = run[1], run[2]
        else:
            row = existing.get(key)
            if row is not None:
                view, history = _view(row), list(row.state_history)
                known[key] = (run_id, view, history)
            elif key in new_rows:  # the batch carries this new run twice
                view, history = _view_of_new_row(new_rows[key]), new_rows[key]["state_history"]
                first = True
            else:
                view, history = RunView(state=None), []
                first_records[key] = record
                first = True
        states = record.get("states") or ()
        skip = _already_recorded(history, record.get("state_offset"), states)
        written = len(history)
        for proposed in states[skip:] if skip else states:
            ctx = _orchestrate(view, proposed, now, CORE_TASK_POLICY, batch=True)
            if not ctx.writes:
                rejected.append({"id": str(run_id), "state": ctx.proposed.type.value, "reason": ctx.reason})
                break
            history.append(_entry(ctx.proposed, times))
        accepted += skip + len(history) - written
        # The SDK counts attempts itself (a task retried in-process re-enters Running under one task run).
        run_count = record.get("run_count", 0)
        grew = len(history) > written
        if run_count > view.run_count:
            view.run_count = run_count
            grew = True
        if first:
            # A new run's row is built now and its orchestration objects dropped: objects that outlive the loop
            # are what the garbage collector keeps scanning while a large batch is processed.
            new_rows[key] = _new_row(first_records[key], view, history)
        elif grew:
            changed.add(key)
    # Core executemany: the ORM's unit-of-work bookkeeping would cost more than the rows themselves.
    if new_rows:
        _insert(conn, new_rows.values(), now, times)
    updates = [_update_row(*known[key], now) for key in changed]
    if updates:
        conn.execute(_UPDATE_EXISTING, updates)
    result.accepted += accepted


def _known_ids(conn: sa.Connection, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Which of ``ids`` have a row already. Most batches bring new runs only: on SQLite, one query through the
    driver answers that for a fraction of what reading the (absent) rows through SQLAlchemy costs; elsewhere the
    rows are read anyway and the ids are returned as they are."""
    if not ids or conn.dialect.name != "sqlite":
        return ids
    process = _C.id.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    keys = {process(i) if process is not None else i: i for i in ids}
    # Only placeholders are interpolated (one per id); the ids travel as parameters.
    sql = "SELECT id FROM task_runs WHERE id IN (" + ",".join("?" * len(keys)) + ")"  # noqa: S608
    with driver_cursor(conn, sql) as cursor:
        cursor.execute(sql, list(keys))
        return [keys[found] for (found,) in cursor.fetchall()]


# Values the statement writes instead of every row carrying them (SQLAlchemy processes each row's values one by one,
# and these would cost more than the rest of the row):
# - JSON columns most new task runs leave empty, as the SQL literal of the empty value (the text SQLAlchemy's JSON
#   type stores for it);
# - ``created`` and ``updated``, the batch's time: one parameter, processed once per batch by the column type.
_EMPTY_JSON = {"tags": "'[]'", "task_inputs": "'{}'", "state_details": "'{}'", "state_data": "'null'"}


class _DriverValue(sa.types.UserDefinedType[Any]):
    """A parameter already in the form the database driver takes: no processing, no cast."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        raise NotImplementedError("only used for parameters")


_BATCH_TIME = sa.bindparam("_batch_time", type_=_DriverValue())
_INSERTS: dict[tuple[str, ...], sa.Insert] = {}
# On SQLite (the embedded default, where the batch is under every task's cost), the INSERT goes through the driver:
# compiled once per engine dialect and row keys, see ``_bulk`` (weak keys: engines come and go in tests).
_DRIVER_INSERTS: weakref.WeakKeyDictionary[Dialect, dict[tuple[str, ...], DriverBulk]] = weakref.WeakKeyDictionary()


def _insert(conn: sa.Connection, rows: Iterable[dict[str, Any]], now: dt.datetime, times: Times | None = None) -> None:
    """INSERT new rows: one executemany per combination of columns (usually one for a whole batch). ``times``: on
    SQLite, datetimes already formatted as the timestamp columns store them."""
    time_column = _C.created.type.dialect_impl(conn.dialect)
    process = time_column.bind_processor(conn.dialect)
    batch_time = process(now) if process is not None else now
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        row["_batch_time"] = batch_time
        keys = tuple(row)
        group = groups.get(keys)
        if group is None:
            group = groups[keys] = []
        group.append(row)
    driver = conn.dialect.name == "sqlite"
    for keys, group in groups.items():
        empty = tuple(name for name in _EMPTY_JSON if name not in keys)
        statement = _INSERTS.get(empty)
        if statement is None:
            values: dict[str, Any] = {name: sa.literal_column(_EMPTY_JSON[name]) for name in empty}
            statement = _INSERTS[empty] = _TASK_RUNS.insert().values(created=_BATCH_TIME, updated=_BATCH_TIME, **values)
        if not driver:
            conn.execute(statement, group)
            continue
        compiled = _DRIVER_INSERTS.setdefault(conn.dialect, {})
        bulk = compiled.get(keys)
        if bulk is None:
            bulk = compiled[keys] = DriverBulk(statement, conn.dialect, keys)
        bulk.executemany(conn, group, times)


def _already_recorded(
    history: list[dict[str, Any]], offset: int | None, states: Sequence[schemas.RecordedState]
) -> int:
    """How many of ``states`` (starting at position ``offset`` of the run's history) the history already holds."""
    if offset is None or offset >= len(history):
        return 0
    held = 0
    for entry, proposed in zip(history[offset:], states, strict=False):
        # Same position, same type and name: the same state sent again (its stored timestamp may have been clamped).
        type_ = _STATE_TYPES[proposed["type"]]
        if entry["type"] != type_.value or entry["name"] != (proposed.get("name") or DEFAULT_NAMES[type_]):
            break
        held += 1
    return held


# Most states carry no details; they share one empty object. SCHEDULED states get their own, because the
# bookkeeping fills in a missing scheduled time.
_NO_DETAILS = StateDetails()
_STATE_FIELDS = tuple(State.model_fields)
# A recorded state's type arrives as the StateType's value (see ``RecordedState``); set_state passes the member.
_STATE_TYPES: dict[str, StateType] = {member.value: member for member in StateType}
_new_object = object.__new__
_set_attribute = object.__setattr__


class _BatchState:
    """A proposed state of the task-run batch, as the rules and the bookkeeping read it: the attributes of
    ``State`` (a test runs both through the policy and compares), without pydantic's per-object machinery, which
    cost more than the rules themselves. Never leaves the batch: answers carry real ``State`` objects.

    ``text`` is the time as the client sent it when that is already the stored form (``isoformat`` of a UTC time,
    to the microsecond); it stands for ``timestamp`` as long as ``text_of`` is that same object (the rules may clamp
    the time)."""

    __slots__ = ("data", "id", "message", "name", "state_details", "text", "text_of", "timestamp", "type")

    def __init__(
        self,
        type_: StateType,
        name: str,
        timestamp: dt.datetime,
        message: str | None,
        state_details: StateDetails,
        data: Any,
        text: str | None,
    ) -> None:
        self.id = None
        self.type = type_
        self.name = name
        self.timestamp = timestamp
        self.message = message
        self.state_details = state_details
        self.data = data
        self.text = text
        self.text_of = timestamp


_parse_time = dt.datetime.fromisoformat


def _state_time(raw: str | dt.datetime) -> tuple[dt.datetime, str | None]:
    """A recorded state's time as an aware UTC datetime (naive means UTC, as everywhere in the API), and its text
    when the client sent it in the stored form. Times arrive as the SDK's ISO text: parsed here, where they are
    read, instead of by the validator (whose datetimes carry pydantic's own tzinfo, then converted one by one),
    and kept as text so that the history does not format them again."""
    text: str | None = None
    if raw.__class__ is str:
        try:
            timestamp = _parse_time(raw)
        except ValueError:
            raise InvalidInput(f"state timestamp {raw[:50]!r} is not an ISO 8601 date and time") from None
        # "YYYY-MM-DDTHH:MM:SS.ffffff+00:00": what ``isoformat(timespec="microseconds")`` writes for a UTC time.
        if len(raw) == 32 and raw[10] == "T" and raw[19] == "." and raw[26:] == "+00:00":
            text = raw
    else:
        timestamp = raw  # type: ignore[assignment]
    if timestamp.tzinfo is not dt.UTC:
        try:
            timestamp = assume_utc(timestamp)
        except ValueError as exc:
            raise InvalidInput(f"state timestamp {timestamp.isoformat()}: {exc}") from None
        text = None
    return timestamp, text


def _orchestrate(
    view: RunView, proposed: schemas.RecordedState, now: dt.datetime, policy: Policy, *, batch: bool = False
) -> OrchestrationContext:
    """Run one proposed state through ``policy`` against ``view`` (which the bookkeeping updates when accepted).
    ``batch``: the proposal is a ``_BatchState`` (the batch writes it and answers counts, never the state)."""
    type_ = _STATE_TYPES[proposed["type"]]
    details = proposed.get("state_details")
    if details is None:
        details = StateDetails() if type_ is StateType.SCHEDULED else _NO_DETAILS
    raw = proposed.get("timestamp")
    if raw is None:
        timestamp, text = now, None
    else:
        timestamp, text = _state_time(raw)
    name = proposed.get("name") or DEFAULT_NAMES[type_]
    state: State
    if batch:
        state = cast(
            State, _BatchState(type_, name, timestamp, proposed.get("message"), details, proposed.get("data"), text)
        )
    else:
        # The proposal was validated with the request: build the State without validating (and copying) it again,
        # as ``State.model_construct`` does, at a quarter of its cost (a test pins the result to a validated State).
        state = _new_object(State)
        fields = {
            "id": None,
            "type": type_,
            "name": name,
            "timestamp": timestamp,
            "message": proposed.get("message"),
            "state_details": details,
            "data": proposed.get("data"),
        }
        _set_attribute(state, "__dict__", fields)
        _set_attribute(state, "__pydantic_fields_set__", set(_STATE_FIELDS))
        _set_attribute(state, "__pydantic_extra__", None)
        _set_attribute(state, "__pydantic_private__", None)
    # Task-run times come from the client that ran the task (the batch arrives later): keep them, but never
    # later than the server's clock.
    ctx = OrchestrationContext(kind="task_run", run=view, proposed=state, now=timestamp if timestamp < now else now)
    propose(ctx, policy)
    return ctx


def _entry(state: State, times: Times | None = None) -> dict[str, Any]:
    """A state as stored in ``state_history``: only the fields that are set. With ``times`` (SQLite), the state's
    time is also noted there as the timestamp columns store it, so that the run's times (which are its states'
    times) are not formatted a second time when the row is written."""
    timestamp = state.timestamp
    if state.__class__ is _BatchState and state.text_of is timestamp and state.text is not None:
        text = state.text
    else:
        text = timestamp.isoformat(timespec="microseconds")
    if times is not None and timestamp.tzinfo is dt.UTC:
        # "YYYY-MM-DDTHH:MM:SS.ffffff+00:00" -> "YYYY-MM-DD HH:MM:SS.ffffff", the Timestamp type's SQLite text
        # (tests compare it with the type's own formatting).
        times[id(timestamp)] = (timestamp, f"{text[:10]} {text[11:26]}")
    # Plain strings: json.dumps takes a slower path for str subclasses such as the StrEnum itself.
    entry: dict[str, Any] = {"type": STATE_TYPE_VALUES[state.type], "name": state.name, "timestamp": text}
    if state.message is not None:
        entry["message"] = state.message
    if state.state_details is not _NO_DETAILS:
        details = details_json(state)
        if details:
            entry["state_details"] = details
    if state.data is not None:
        entry["data"] = state.data
    return entry


def _view(row: Any) -> RunView:
    """The orchestration view of a Core row of ``_SELECT_EXISTING``."""
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
    values.update(state_columns(view.state) if view.state is not None else _NO_STATE)
    return values


def _new_row(record: schemas.TaskRunRecord, view: RunView, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The INSERT parameters of a new run; the batch's time and empty JSON columns are left out (``_insert`` writes
    them), and so are the optional columns most runs leave NULL: SQLite's driver binds a ``None`` parameter through
    its adapter lookup, two failed attribute lookups (and their exceptions) per value."""
    row = {
        "id": record["id"],
        "flow_run_id": record.get("flow_run_id"),
        "task_key": record["task_key"],
        "dynamic_key": record.get("dynamic_key", "0"),
        "name": record["name"],
        "state_history": history,
        **_run_values(view),
    }
    for name in _OPTIONAL_COLUMNS:
        value = record.get(name)
        if value is not None:
            row[name] = value
    tags = record.get("tags")
    if tags:
        row["tags"] = tags
    inputs = record.get("task_inputs")
    if inputs:
        row["task_inputs"] = inputs
    if not row["state_details"]:
        del row["state_details"]
    if row["state_data"] is None:
        del row["state_data"]
    if row["state_message"] is None:
        del row["state_message"]
    return row


# Nullable columns without a default that a new run's row carries only when set (see ``_new_row``).
_OPTIONAL_COLUMNS = ("cache_key", "cache_expiration")


def _view_of_new_row(row: dict[str, Any]) -> RunView:
    """The orchestration view of a new run from its INSERT parameters (a batch carrying one new run twice)."""
    state = None
    if row["state_type"] is not None:
        state = State(
            type=row["state_type"],
            name=row["state_name"],
            timestamp=row["state_timestamp"],
            message=row.get("state_message"),
            state_details=StateDetails.model_validate(row.get("state_details") or {}),
            data=row.get("state_data"),
        )
    return RunView(state=state, **{name: row[name] for name in _RUN_FIELDS})


def _update_row(
    task_run_id: uuid.UUID, view: RunView, history: list[dict[str, Any]], now: dt.datetime
) -> dict[str, Any]:
    return {"_id": task_run_id, "updated": now, "state_history": history, **_run_values(view)}


def read_states(session: Session, task_run_id: uuid.UUID) -> list[State] | None:
    """The run's states, oldest first (``None`` when there is no such task run)."""
    history = session.execute(sa.select(_C.state_history).where(_C.id == task_run_id)).scalar_one_or_none()
    if history is None:
        return None
    # Stored states have no id of their own; each gets a stable one derived from the run and its position.
    return [
        State.model_validate({**entry, "id": uuid.uuid5(task_run_id, str(position))})
        for position, entry in enumerate(history)
    ]


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
