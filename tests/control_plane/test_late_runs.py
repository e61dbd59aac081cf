"""The late-runs service: a run still Scheduled past its start by the threshold is proposed ``Late`` — through the
orchestration rules, so runs not yet late, already Late, or claimed meanwhile are left alone. SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from orch.control_plane.models import flow_runs, flows
from orch.control_plane.schemas.flow_runs import FlowRunCreate
from orch.control_plane.schemas.flows import FlowCreate
from orch.control_plane.schemas.states import StateCreate, StateDetails, StateType
from orch.control_plane.services import late_runs
from orch.control_plane.settings import ServerSettings

pytestmark = pytest.mark.integration

# Scheduled times are relative to the start of each test (``BASE``, reset by an autouse fixture); every tick
# happens later than every creation (``now()``), so history stays in time order. Thresholds are generous so that a
# slow machine changes nothing.
BASE = dt.datetime.now(dt.UTC)


@pytest.fixture(autouse=True)
def _base() -> None:
    global BASE
    BASE = dt.datetime.now(dt.UTC)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _run(database: Any, scheduled_in: float | None, state_type: StateType = StateType.SCHEDULED) -> uuid.UUID:
    details = StateDetails()
    if scheduled_in is not None:
        details.scheduled_time = BASE + dt.timedelta(seconds=scheduled_in)
    with database.session() as session:
        flow = flows.create(session, FlowCreate(name="late"))
        run, _ = flow_runs.create(
            session, FlowRunCreate(flow_id=flow.id, state=StateCreate(type=state_type, state_details=details))
        )
        return run.id


def _state(database: Any, run_id: uuid.UUID) -> tuple[str | None, str | None, int]:
    with database.session(write=False) as session:
        row = flow_runs.read(session, run_id)
        assert row is not None
        return row.state_type, row.state_name, row.state_version


def test_marks_only_overdue_scheduled_runs(database: Any) -> None:
    settings = ServerSettings(late_runs_threshold=300)
    overdue = _run(database, -600)
    just_due = _run(database, -5)
    future = _run(database, 600)
    running = _run(database, None, StateType.RUNNING)
    assert late_runs.tick(database, settings, now=now()) == 1
    assert _state(database, overdue) == ("SCHEDULED", "Late", 2)
    assert _state(database, just_due) == ("SCHEDULED", "Scheduled", 1)
    assert _state(database, future) == ("SCHEDULED", "Scheduled", 1)
    assert _state(database, running)[0] == "RUNNING"
    with database.session(write=False) as session:
        row = flow_runs.read(session, overdue)
        assert row is not None
        assert row.state_details["scheduled_time"]
        assert row.expected_start_time == BASE - dt.timedelta(seconds=600)
        history = flow_runs.read_states(session, overdue)
    assert [s.name for s in history] == ["Scheduled", "Late"]


def test_second_tick_changes_nothing(database: Any) -> None:
    settings = ServerSettings(late_runs_threshold=0)
    run_id = _run(database, -1)
    assert late_runs.tick(database, settings, now=now()) == 1
    assert late_runs.tick(database, settings, now=now() + dt.timedelta(seconds=5)) == 0
    assert _state(database, run_id) == ("SCHEDULED", "Late", 2)


def test_a_claimed_run_stays_claimed(database: Any) -> None:
    run_id = _run(database, -120)
    with database.session() as session:
        answer = flow_runs.set_state(session, run_id, StateCreate(type=StateType.PENDING))
    assert answer is not None
    assert answer.status.value == "ACCEPT"
    assert late_runs.tick(database, ServerSettings(late_runs_threshold=0), now=now()) == 0
    assert _state(database, run_id)[0] == "PENDING"


def test_a_late_run_can_still_be_claimed_once(database: Any) -> None:
    run_id = _run(database, -120)
    assert late_runs.tick(database, ServerSettings(late_runs_threshold=0), now=now()) == 1
    with database.session() as session:
        first = flow_runs.set_state(session, run_id, StateCreate(type=StateType.PENDING))
        second = flow_runs.set_state(session, run_id, StateCreate(type=StateType.PENDING))
    assert first is not None
    assert second is not None
    assert (first.status.value, second.status.value) == ("ACCEPT", "REJECT")


def test_awaiting_retry_past_its_time_becomes_late(database: Any) -> None:
    run_id = _run(database, None, StateType.RUNNING)
    with database.session() as session:
        row = flow_runs.read(session, run_id)
        assert row is not None
        row.empirical_policy = {"retries": 1, "retry_delay": 0}
    with database.session() as session:
        answer = flow_runs.set_state(session, run_id, StateCreate(type=StateType.FAILED), now=now())
    assert answer is not None
    assert answer.state is not None
    assert answer.state.name == "AwaitingRetry"
    # The retry was due (retry_delay 0); a tick a minute later finds it overdue.
    assert late_runs.tick(database, ServerSettings(late_runs_threshold=15), now=now() + dt.timedelta(minutes=1)) == 1
    assert _state(database, run_id)[1] == "Late"
