"""Task-run rows written through the SQLite driver (``models._bulk``) are exactly what SQLAlchemy writes.

The task-run batch inserts new rows with ``DriverBulk`` on SQLite, and formats the runs' times from their state
entries. These tests write the same rows both ways into one real SQLite database (migrated by Alembic) and compare
the stored text of every column, on random values; and they pin what ``DriverBulk`` refuses.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.integration

_ZONES = [dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-8))]


@pytest.fixture
def sqlite_db(orch_home: Path) -> Any:
    from orch.control_plane.db import migrate
    from orch.control_plane.db.engine import Database

    db = Database(f"sqlite:///{orch_home / 'bulk.db'}")
    migrate.upgrade(db)
    yield db
    db.engine.dispose()


def _time(rng: random.Random) -> dt.datetime | None:
    if rng.random() < 0.2:
        return None
    seconds = rng.uniform(86_400 * 400, 86_400 * 365 * 80)
    value = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    return value.replace(microsecond=rng.choice([0, rng.randrange(1_000_000)])).astimezone(rng.choice(_ZONES))


def _row(rng: random.Random, flow_run_id: uuid.UUID | None) -> dict[str, Any]:
    texts = ["a", 'é\u2603 "quoted" \\ back', "x" * 300, "Completed"]
    return {
        "id": uuid.uuid4(),
        "flow_run_id": flow_run_id,
        "task_key": rng.choice(texts),
        "dynamic_key": str(rng.randrange(1000)),
        "name": rng.choice(texts),
        "cache_key": rng.choice([None, *texts]),
        "cache_expiration": _time(rng),
        "state_history": [{"type": "RUNNING", "name": rng.choice(texts), "timestamp": "2026-01-01T00:00:00+00:00"}],
        "state_version": rng.randrange(5),
        "run_count": rng.randrange(5),
        "start_time": _time(rng),
        "end_time": _time(rng),
        "total_run_time": rng.choice([0.0, rng.random() * 100]),
        "expected_start_time": _time(rng),
        "state_type": rng.choice([None, "RUNNING", "COMPLETED"]),
        "state_name": rng.choice([None, *texts]),
        "state_timestamp": _time(rng),
        "state_message": rng.choice([None, *texts]),
        "state_details": rng.choice([{}, {"cache_key": "k", "retriable": True}]),
        "state_data": rng.choice([None, {"storage": "file:///tmp", "key": "é"}, [1, 2.5, None]]),
        "tags": rng.choice([[], ["a", "b"]]),
        "task_inputs": rng.choice([{}, {"x": [{"input_type": "parameter", "name": "x"}]}]),
        "created": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "updated": dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
    }


def _stored(db: Any, ids: list[uuid.UUID]) -> list[tuple[Any, ...]]:
    """Every column but ``id`` as SQLite stores it (raw text, through the driver), in the order of ``ids``."""
    path = db.engine.url.database
    with sqlite3.connect(path) as raw:
        columns = [c[1] for c in raw.execute("PRAGMA table_info(task_runs)") if c[1] != "id"]
        out = []
        for run_id in ids:
            row = raw.execute(f"SELECT {', '.join(columns)} FROM task_runs WHERE id = ?", [run_id.hex]).fetchone()
            assert row is not None, run_id
            out.append(tuple(row))
    return out


def test_driver_rows_equal_sqlalchemy_rows_on_random_values(sqlite_db: Any) -> None:
    from orch.control_plane.db import orm
    from orch.control_plane.models._bulk import DriverBulk

    table = cast(sa.Table, orm.TaskRun.__table__)
    rng = random.Random(11)
    with sqlite_db.session() as session:
        flow = orm.Flow(name="f")
        session.add(flow)
        session.flush()
        flow_run = orm.FlowRun(flow_id=flow.id, name="r")
        session.add(flow_run)
        session.flush()
        flow_run_id = flow_run.id
    rows = [_row(rng, rng.choice([None, flow_run_id])) for _ in range(400)]
    twins = [{**row, "id": uuid.uuid4()} for row in rows]
    statement = table.insert()
    with sqlite_db.engine.begin() as conn:
        for row, twin in zip(rows, twins, strict=True):
            keys = tuple(row)
            DriverBulk(statement, conn.dialect, keys).executemany(conn, [row])
            conn.execute(statement, [twin])
    assert _stored(sqlite_db, [r["id"] for r in rows]) == _stored(sqlite_db, [t["id"] for t in twins])


# A server clock later than any time the test draws (the model never keeps a time later than its clock).
_NEVER = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


def test_times_noted_by_history_entries_are_the_column_text() -> None:
    """``_entry`` notes each UTC state time as SQLite text for the row's time columns: it must be exactly what the
    ``Timestamp`` type writes (microseconds or not, any year)."""
    from sqlalchemy.dialects import sqlite

    from orch.control_plane.db.types import Timestamp
    from orch.control_plane.models._bulk import Times
    from orch.control_plane.models.task_runs import _entry, _orchestrate
    from orch.control_plane.orchestration import RunView
    from orch.control_plane.orchestration.policies import CORE_TASK_POLICY
    from orch.control_plane.schemas.states import State, StateType

    process = Timestamp().bind_processor(sqlite.dialect())
    rng = random.Random(5)
    for _ in range(5_000):
        value = _time(rng) or dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
        state = State(type=StateType.RUNNING, name="Running", timestamp=value)
        assert state.timestamp.tzinfo is dt.UTC  # the schema keeps every time in UTC
        times: Times = {}
        entry = _entry(state, times)
        assert dt.datetime.fromisoformat(entry["timestamp"]) == value
        assert times == {id(state.timestamp): (state.timestamp, process(value))}
        # The batch's states keep the client's text when it is already the stored form: the same entry and text.
        text = state.timestamp.isoformat(timespec="microseconds")
        for sent in (text, value.isoformat(), value):
            proposed: Any = {"type": "RUNNING", "timestamp": sent}
            batch_state = _orchestrate(RunView(state=None), proposed, _NEVER, CORE_TASK_POLICY, batch=True).proposed
            noted_too: Times = {}
            assert _entry(batch_state, noted_too)["timestamp"] == text
            assert list(noted_too.values()) == [(batch_state.timestamp, process(value))]
        # A time in another zone (only possible without validation) is not noted: the type formats it itself.
        other = State.model_construct(type=StateType.RUNNING, name="Running", timestamp=value.astimezone(_ZONES[1]))
        noted: Times = {}
        _entry(other, noted)
        assert noted == {}


def test_driver_bulk_refuses_what_it_cannot_write_exactly() -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    from orch.control_plane.db import orm
    from orch.control_plane.models._bulk import DriverBulk

    table = cast(sa.Table, orm.TaskRun.__table__)
    keys = ("flow_run_id", "task_key", "name")
    # ``id`` and ``created`` have Python-side defaults: SQLAlchemy would compute them per row.
    with pytest.raises(ValueError, match="the rows must carry"):
        DriverBulk(table.insert(), sqlite.dialect(), keys)
    with pytest.raises(ValueError, match="positional"):
        DriverBulk(table.insert(), postgresql.psycopg.dialect(), keys)  # type: ignore[attr-defined]
