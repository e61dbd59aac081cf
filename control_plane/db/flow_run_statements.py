"""The statements of a flow run's transitions, built once: Core statements for SQLite, SQL sent straight to psycopg for
PostgreSQL (sync connections of the engine, and the hot routes' async connections).

Every transition is a read and a write, so their cost is the API's throughput: through SQLAlchemy each statement
costs ~150 µs of CPU on this project's reference machine, through psycopg ~50 µs. The write is one statement, a
data-modifying CTE: the history row is inserted only when the conditional ``UPDATE`` matched, so the
optimistic-concurrency check and the history stay one atomic step in one round trip. Creating a run with its first
state is one statement as well on the async path (``insert_with_state_sql``): the run's row, already in that state,
and its first history row. Values are converted as the ORM's column types do (``jsonb`` for JSON columns, UTC for
timestamps); ``orch.control_plane.models.flow_runs`` decides what is written.

The async path's statements also carry the row's version, PostgreSQL's ``xmin`` (the id of the transaction that
wrote this version of the row: every ``UPDATE``, by any writer, makes a new version with a new ``xmin``). Its
write applies only to the version it decided on (``versioned_write_sql``), and returns the row's new version: a
worker that remembers the row it wrote can decide the run's next transition without reading it first, and the
write tells it whether anything has changed the row since (see ``models.flow_runs.set_state_async``).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from orch.control_plane.db import orm
from orch.control_plane.schemas.states import ACTIVE_STATES

if TYPE_CHECKING:
    from psycopg import AsyncConnection

RUNS = cast(sa.Table, orm.FlowRun.__table__)
STATES = cast(sa.Table, orm.FlowRunState.__table__)
# What the orchestration rules read of a run.
VIEW_COLUMNS = (
    "id",
    *orm.STATE_COLUMNS,
    *orm.RUN_BOOKKEEPING_COLUMNS,
    "heartbeat_time",
    "empirical_policy",
    "work_queue_name",
    "updated",
)
# The row version the async path reads and returns with a run's view (see the module's docstring).
ROW_VERSION = "xmin"
# What a transition writes.
WRITE_COLUMNS = (*orm.STATE_COLUMNS, *orm.RUN_BOOKKEEPING_COLUMNS, "heartbeat_time", "updated")
# What creating a run sets; every other column takes its default (scalars: ``state_version`` 0...) or NULL.
CREATE_COLUMNS = (
    "id",
    "flow_id",
    "name",
    "parameters",
    "tags",
    "deployment_id",
    "work_queue_name",
    "parent_task_run_id",
    "idempotency_key",
    "empirical_policy",
    "expected_start_time",
    "state_details",
    "created",
    "updated",
)

# SQLite: Core statements with cached compiled forms.
SELECT_VIEW = sa.select(*[RUNS.c[name] for name in VIEW_COLUMNS]).where(RUNS.c.id == sa.bindparam("run_id"))
UPDATE_STATE = (
    RUNS.update()
    .where(RUNS.c.id == sa.bindparam("run_id"), RUNS.c.state_version == sa.bindparam("seen_version"))
    .values({name: sa.bindparam(name) for name in WRITE_COLUMNS})
)
SELECT_ROW = sa.select(RUNS).where(RUNS.c.id == sa.bindparam("run_id"))
INSERT_HISTORY = STATES.insert()
INSERT_RUN = RUNS.insert()


def column_defaults() -> dict[str, Any]:
    """The scalar defaults of the columns a new run does not set. A computed default (``uuid4``, ``now``) on such
    a column could not be replicated in plain SQL: refused at import."""
    defaults: dict[str, Any] = {}
    for column in RUNS.columns:
        if column.default is None or column.name in CREATE_COLUMNS:
            continue
        if not column.default.is_scalar:
            raise RuntimeError(f"flow_runs.{column.name} has a computed default: add it to CREATE_COLUMNS")
        defaults[column.name] = column.default.arg  # type: ignore[attr-defined]
    return defaults


class PostgresStatements:
    """The transition's statements on PostgreSQL, sent straight to psycopg as server-side prepared statements."""

    def __init__(self) -> None:
        # The SQL is assembled from the tables' own column names once, at import; values are always parameters.
        self.json_columns = {c.name for c in (*RUNS.columns, *STATES.columns) if isinstance(c.type, sa.JSON)}
        columns = ", ".join(c.name for c in RUNS.columns)
        self.select_view = f"SELECT {', '.join(VIEW_COLUMNS)} FROM flow_runs WHERE id = %(run_id)s"  # noqa: S608
        self.select_row = f"SELECT {columns} FROM flow_runs WHERE id = %(run_id)s"  # noqa: S608
        self.select_row_by_key = (
            f"SELECT {columns} FROM flow_runs WHERE flow_id = %(flow_id)s AND idempotency_key = %(key)s"  # noqa: S608
        )
        history_columns = ", ".join(c.name for c in STATES.columns)
        history_values = ", ".join(self._param(c.name, "h_") for c in STATES.columns)
        history = f"INSERT INTO flow_run_states ({history_columns}) SELECT {history_values}"
        assignments = ", ".join(f"{name} = {self._param(name)}" for name in WRITE_COLUMNS)
        self.write_sql = (
            f"WITH moved AS (UPDATE flow_runs SET {assignments}"  # noqa: S608
            f" WHERE id = %(run_id)s AND state_version = %(seen_version)s RETURNING id) {history} FROM moved"
        )
        # The async path: the view with its row version, and the write conditional on that version (the state
        # version too, which any transition changes), answering the row's new version (no row: nothing written).
        view = f"{', '.join(VIEW_COLUMNS)}, xmin::text AS {ROW_VERSION}"
        self.select_versioned_view = f"SELECT {view} FROM flow_runs WHERE id = %(run_id)s"  # noqa: S608
        self.versioned_write_sql = (
            f"WITH moved AS (UPDATE flow_runs SET {assignments}"  # noqa: S608
            f" WHERE id = %(run_id)s AND state_version = %(seen_version)s AND xmin = %(seen_xmin)s::xid"
            f" RETURNING xmin::text AS {ROW_VERSION}), history AS ({history} FROM moved)"
            f" SELECT {ROW_VERSION} FROM moved"
        )
        self.defaults = column_defaults()
        inserted = [*CREATE_COLUMNS, *self.defaults]
        self.insert_sql = (
            f"INSERT INTO flow_runs ({', '.join(inserted)})"  # noqa: S608
            f" VALUES ({', '.join(self._param(name) for name in inserted)}) RETURNING {columns}"
        )
        # A new run already in its first state, and that state's history row: one statement, one round trip.
        self.new_columns = list(dict.fromkeys([*CREATE_COLUMNS, *self.defaults, *WRITE_COLUMNS]))
        self.insert_with_state_sql = (
            f"WITH run AS (INSERT INTO flow_runs ({', '.join(self.new_columns)})"  # noqa: S608
            f" VALUES ({', '.join(self._param(name) for name in self.new_columns)})"
            f" RETURNING {columns}, xmin::text AS {ROW_VERSION}), history AS ({history} FROM run) SELECT * FROM run"
        )
        self.queue_limit = "SELECT concurrency_limit FROM work_queues WHERE name = %(name)s FOR UPDATE"
        active = ", ".join(f"'{s.value}'" for s in ACTIVE_STATES)
        self.queue_active = (
            f"SELECT count(*) FROM flow_runs WHERE work_queue_name = %(name)s AND state_type IN ({active})"  # noqa: S608
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

    def values(self, params: dict[str, Any], history: dict[str, Any] | None = None) -> dict[str, Any]:
        """Parameters as the columns' types expect them; the history row's under ``h_`` names."""
        values = {name: self._value(name, value) for name, value in params.items()}
        for name, value in (history or {}).items():
            values[f"h_{name}"] = self._value(name, value)
        return values

    # -- on a connection of the engine (inside its session's transaction) --

    def read(self, conn: sa.Connection, run_id: uuid.UUID, sql: str) -> dict[str, Any] | None:
        from psycopg.rows import dict_row

        with conn.connection.driver_connection.cursor(row_factory=dict_row) as cursor:  # type: ignore[union-attr]
            cursor.execute(sql, {"run_id": run_id}, prepare=True)
            return _utc(cursor.fetchone())

    def write(self, conn: sa.Connection, params: dict[str, Any], history: dict[str, Any]) -> bool:
        with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(self.write_sql, self.values(params, history), prepare=True)
            return cursor.rowcount == 1

    # -- on the hot routes' async connections (``Database.async_pg``) --

    async def fetch(self, conn: AsyncConnection, sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
        from psycopg.rows import dict_row

        async with conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(sql, params, prepare=True)
            return _utc(await cursor.fetchone())

    async def execute(self, conn: AsyncConnection, sql: str, params: dict[str, Any]) -> int:
        """Run ``sql``; the number of rows it changed."""
        async with conn.cursor() as cursor:
            await cursor.execute(sql, params, prepare=True)
            return cursor.rowcount

    async def scalar(self, conn: AsyncConnection, sql: str, params: dict[str, Any]) -> Any:
        async with conn.cursor() as cursor:
            await cursor.execute(sql, params, prepare=True)
            row = await cursor.fetchone()
        return None if row is None else row[0]


def _utc(row: dict[str, Any] | None) -> dict[str, Any] | None:
    # psycopg answers timestamptz in the session's time zone; orch's datetimes are UTC (as the ORM's Timestamp).
    if row is not None:
        for name, value in row.items():
            if isinstance(value, dt.datetime):
                row[name] = value.astimezone(dt.UTC)
    return row


PG = PostgresStatements()
