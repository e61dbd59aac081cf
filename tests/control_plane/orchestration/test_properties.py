"""Property test: random sequences of proposals, applied through ``models.flow_runs.set_state`` on a real database,
never put a run into a state the orchestration rules forbid, and the stored bookkeeping always agrees with history.

Each example creates a run (with a random retries policy) and proposes a random sequence of states (random types and
names including Late, AwaitingRetry and Retrying, random ``force``, scheduled times around "now") while the clock
moves forward. After every answer and at the end it checks the invariants listed in ``check_invariants``. It runs on
SQLite and, with fewer examples, on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orch.control_plane.db import migrate
from orch.control_plane.db.engine import Database
from orch.control_plane.models import flow_runs
from orch.control_plane.schemas.base import now_utc
from orch.control_plane.schemas.flow_runs import FlowRunCreate, RunPolicy
from orch.control_plane.schemas.flows import FlowCreate
from orch.control_plane.schemas.states import TERMINAL_STATES, SetStateStatus, State, StateType
from tests.strategies import Proposal, proposals, run_policies

pytestmark = pytest.mark.integration

S = StateType


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    path: Path = tmp_path_factory.mktemp("props") / "orch.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db)
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def postgres_db(postgres_server: Any) -> Iterator[Database]:
    from tests.plugins.postgres import new_postgres_database

    db = Database(new_postgres_database(postgres_server), pool_size=2)
    yield db
    db.dispose()


def _flow_id(db: Database) -> uuid.UUID:
    from orch.control_plane.models import flows

    with db.session() as session:
        return flows.create(session, FlowCreate(name="property")).id


@dataclasses.dataclass
class Model:
    """What the test itself observed, independently of the run's stored counters."""

    written: list[State] = dataclasses.field(default_factory=list)
    runs_started: int = 0
    claims_this_episode: int = 0
    first_start: dt.datetime | None = None
    total_run_time: float = 0.0


def run_sequence(db: Database, policy: dict[str, Any], steps: list[Proposal]) -> None:
    with db.session() as session:
        run, created = flow_runs.create(
            session, FlowRunCreate(flow_id=_flow_id(db), empirical_policy=RunPolicy(**policy))
        )
        run_id = run.id
    assert created
    model = Model()
    now = now_utc()
    current: State | None = None
    for step in steps:
        now += dt.timedelta(seconds=step.advance)
        with db.session() as session:
            result = flow_runs.set_state(session, run_id, step.state_create(now), force=step.force, now=now)
        assert result is not None
        # Every answer is one of the four, with a reason unless it is a plain ACCEPT.
        assert result.status in set(SetStateStatus)
        if result.status is not SetStateStatus.ACCEPT:
            assert result.details.reason, result
        if result.status is SetStateStatus.WAIT:
            assert result.details.delay_seconds is not None
            assert result.details.delay_seconds >= 0
        new = result.state
        if new is None:
            # Refused before the run ever had a state.
            assert current is None
            assert result.status is not SetStateStatus.ACCEPT
            continue
        written = current is None or (new.type, new.name, new.timestamp) != (
            current.type,
            current.name,
            current.timestamp,
        )
        if result.status in (SetStateStatus.WAIT, SetStateStatus.ABORT):
            assert not written, f"{result.status} must not change the state"
        if result.status is SetStateStatus.ACCEPT:
            assert written
        if written:
            assert new.timestamp == now
            _check_transition(current, new, step, result.status, model)
            model.written.append(new)
            current = new
    event(f"written transitions: {min(len(model.written), 6)}+")
    _check_final(db, run_id, model, current)


def _check_transition(old: State | None, new: State, step: Proposal, status: SetStateStatus, model: Model) -> None:
    old_type = old.type if old else None
    if not step.force:
        # Nothing leaves a final state except to be scheduled again.
        if old_type in TERMINAL_STATES:
            assert new.type is S.SCHEDULED, f"{old_type} -> {new.type}"
        # Claims only from a run waiting to start, at most once per scheduled episode.
        if new.type is S.PENDING:
            assert old_type in (None, S.SCHEDULED), f"claimed from {old_type}"
        # A REJECT that writes is the retry redirect, and nothing else.
        if status is SetStateStatus.REJECT:
            assert old_type is S.RUNNING
            assert step.type in (S.FAILED, S.CRASHED)
            assert new.name == "AwaitingRetry"
        if new.type is S.COMPLETED:
            assert old_type in (S.RUNNING, S.CANCELLING)
        if new.type is S.PAUSED:
            assert old_type is S.RUNNING
        if new.name == "Late":
            assert old_type is S.SCHEDULED
    if new.type is S.SCHEDULED and old_type is not S.SCHEDULED:
        model.claims_this_episode = 0
    if new.type is S.PENDING and old_type in (None, S.SCHEDULED):
        model.claims_this_episode += 1
        assert model.claims_this_episode <= 1
    if new.type is S.RUNNING and old_type not in (S.RUNNING, S.PAUSED):
        model.runs_started += 1
    if new.type is S.RUNNING and model.first_start is None:
        model.first_start = new.timestamp
    if old is not None and old_type is S.RUNNING and new.type is not S.RUNNING:
        model.total_run_time += (new.timestamp - old.timestamp).total_seconds()


def _check_final(db: Database, run_id: uuid.UUID, model: Model, current: State | None) -> None:
    with db.session(write=False) as session:
        row = flow_runs.read(session, run_id)
        assert row is not None
        history = flow_runs.read_states(session, run_id)
        # History length == written transitions == state_version, in the order they were written.
        assert len(history) == len(model.written) == row.state_version
        assert [(s.type, s.name) for s in history] == [(s.type, s.name) for s in model.written]
        stamps = [s.timestamp for s in history]
        assert stamps == sorted(stamps)
        assert row.run_count == model.runs_started
        assert row.start_time == model.first_start
        assert row.total_run_time == pytest.approx(model.total_run_time, abs=1e-3)
        if current is None:
            assert row.state_type is None
            return
        assert row.state_type == current.type.value
        assert row.state_name == current.name
        # end_time is set exactly when the run is in a final state.
        assert (row.end_time is not None) == (current.type in TERMINAL_STATES)
        if row.end_time is not None:
            assert row.end_time == current.timestamp
        scheduled = [s for s in model.written if s.type is S.SCHEDULED]
        if scheduled:
            assert row.expected_start_time == scheduled[-1].state_details.scheduled_time


SEQUENCES = st.lists(proposals(), min_size=1, max_size=14)
COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "derandomize": False,
}


@settings(max_examples=100, **COMMON)  # type: ignore[arg-type]
@given(policy=run_policies(), steps=SEQUENCES)
def test_random_transitions_keep_the_invariants_on_sqlite(
    sqlite_db: Database, policy: dict[str, Any], steps: list[Proposal]
) -> None:
    run_sequence(sqlite_db, policy, steps)


@settings(max_examples=12, **COMMON)  # type: ignore[arg-type]
@given(policy=run_policies(), steps=SEQUENCES)
def test_random_transitions_keep_the_invariants_on_postgresql(
    postgres_db: Database, policy: dict[str, Any], steps: list[Proposal]
) -> None:
    run_sequence(postgres_db, policy, steps)


@settings(max_examples=30, **COMMON)  # type: ignore[arg-type]
@given(
    policy=run_policies(),
    steps=st.lists(proposals(force_probability=0.0), min_size=1, max_size=20),
)
def test_unforced_sequences_never_leave_a_final_state_except_to_scheduled(
    sqlite_db: Database, policy: dict[str, Any], steps: list[Proposal]
) -> None:
    run_sequence(sqlite_db, policy, steps)


@settings(max_examples=30, **COMMON)  # type: ignore[arg-type]
@given(
    batches=st.lists(
        st.lists(st.sampled_from(list(StateType)), min_size=0, max_size=4),
        min_size=1,
        max_size=5,
    )
)
def test_task_run_batches_never_leave_a_final_state(sqlite_db: Database, batches: list[list[StateType]]) -> None:
    """Task runs recorded in random batches: after a final state nothing more is written (it is reported as
    rejected instead), and the stored version, history and counters agree."""
    from orch.control_plane.models import task_runs
    from orch.control_plane.schemas.task_runs import RecordedState, TaskRunRecord

    task_run_id = uuid.uuid4()
    clock = now_utc()
    written: list[StateType] = []
    for batch in batches:
        states: list[RecordedState] = []
        for type_ in batch:
            clock += dt.timedelta(seconds=1)
            states.append({"type": type_, "timestamp": clock})
        record: TaskRunRecord = {"id": task_run_id, "task_key": "prop", "name": "prop", "states": states}
        with sqlite_db.session() as session:
            answer = task_runs.record_batch(session, [record])
        expected_accepted = 0
        for type_ in batch:
            if written and written[-1] in TERMINAL_STATES:
                break
            written.append(type_)
            expected_accepted += 1
        assert answer.accepted == expected_accepted
        assert len(answer.rejected) == (1 if expected_accepted < len(batch) else 0)
        for rejected in answer.rejected:
            assert rejected["reason"]
    with sqlite_db.session(write=False) as session:
        row = task_runs.read(session, task_run_id)
        assert row is not None
        history = task_runs.read_states(session, task_run_id)
    assert history is not None
    assert [s.type for s in history] == written
    assert row.state_version == len(written)
    assert row.state_type == (written[-1].value if written else None)
    assert (row.end_time is not None) == bool(written and written[-1] in TERMINAL_STATES)
    entries = sum(
        1 for i, t in enumerate(written) if t is S.RUNNING and (i == 0 or written[i - 1] not in (S.RUNNING, S.PAUSED))
    )
    assert row.run_count == entries
