"""Exactly-once claims under real concurrency, on SQLite and PostgreSQL.

- 16 threads, each with its own ``OrchClient`` (so its own requests and database session), propose Pending for one
  Scheduled run at the same moment (a barrier): exactly one ACCEPT, fifteen REJECT, one Pending in the history.
- 50 runs x 8 claimers: every run claimed exactly once.
- Several processes on one SQLite file claim the same runs through their own engines.
- A work queue with ``concurrency_limit=2`` (row inserted through the ORM: the test needs only the limit) and five
  runs: the third claim answers WAIT.
"""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from orch.control_plane.schemas.flow_runs import FlowRunCreate
from orch.control_plane.schemas.states import StateCreate, StateType

pytestmark = pytest.mark.integration


def _clients(app: Any, count: int) -> list[Any]:
    from orch.client import OrchClient
    from orch.client._embedded import EmbeddedTransport
    from orch.settings import get_settings

    return [OrchClient(get_settings(), transport=EmbeddedTransport(app)) for _ in range(count)]


def _scheduled_runs(client: Any, count: int, **fields: Any) -> list[str]:
    flow = client.create_flow(f"claims-{uuid.uuid4().hex[:6]}")
    return [
        str(
            client.create_flow_run(
                FlowRunCreate(flow_id=flow.id, state=StateCreate(type=StateType.SCHEDULED), **fields)
            ).id
        )
        for _ in range(count)
    ]


def _claim_all(clients: list[Any], run_ids: list[str]) -> dict[str, list[str]]:
    """Every client claims every run (in its own order), all starting together. Returns run id -> statuses."""
    barrier = threading.Barrier(len(clients))
    results: dict[str, list[str]] = {run_id: [] for run_id in run_ids}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def claimer(index: int, client: Any) -> None:
        order = run_ids[index:] + run_ids[:index]
        try:
            barrier.wait()
            for run_id in order:
                answer = client.set_flow_run_state(run_id, StateCreate(type=StateType.PENDING))
                with lock:
                    results[run_id].append(answer.status.value)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


def test_sixteen_simultaneous_claims_of_one_run_have_one_winner(client: Any, app: Any) -> None:
    (run_id,) = _scheduled_runs(client, 1)
    clients = _clients(app, 16)
    try:
        results = _claim_all(clients, [run_id])
    finally:
        for c in clients:
            c.close()
    assert Counter(results[run_id]) == {"ACCEPT": 1, "REJECT": 15}
    history = client.read_flow_run_states(run_id)
    assert [s.type for s in history] == [StateType.SCHEDULED, StateType.PENDING]
    assert client.read_flow_run(run_id).state_version == 2


@pytest.mark.slow
def test_fifty_runs_eight_claimers_each_run_claimed_once(client: Any, app: Any) -> None:
    run_ids = _scheduled_runs(client, 50)
    clients = _clients(app, 8)
    try:
        results = _claim_all(clients, run_ids)
    finally:
        for c in clients:
            c.close()
    for run_id, statuses in results.items():
        assert Counter(statuses) == {"ACCEPT": 1, "REJECT": 7}, run_id
        history = client.read_flow_run_states(run_id)
        assert [s.type for s in history].count(StateType.PENDING) == 1


def test_claims_through_the_model_layer_with_separate_sessions(database: Any) -> None:
    """The same race one layer down: sessions of the ``Database`` used directly, as services do."""
    from orch.control_plane.models import flow_runs, flows
    from orch.control_plane.schemas.flows import FlowCreate

    with database.session() as session:
        flow = flows.create(session, FlowCreate(name="model-claims"))
        run, _ = flow_runs.create(session, FlowRunCreate(flow_id=flow.id, state=StateCreate(type=StateType.SCHEDULED)))
        run_id = run.id
    barrier = threading.Barrier(12)
    statuses: list[str] = []
    lock = threading.Lock()

    def claim() -> None:
        barrier.wait()
        with database.session() as session:
            answer = flow_runs.set_state(session, run_id, StateCreate(type=StateType.PENDING))
        assert answer is not None
        with lock:
            statuses.append(answer.status.value)

    threads = [threading.Thread(target=claim) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(statuses) == {"ACCEPT": 1, "REJECT": 11}


# -- several processes on one SQLite file ---------------------------------------------------------------------------


def _process_claimer(db_path: str, run_ids: list[str], barrier: Any, out: Any) -> None:
    """Runs in a child process: its own engine on the shared file, claims every run."""
    from orch.control_plane.db.engine import Database
    from orch.control_plane.models import flow_runs

    db = Database(f"sqlite:///{db_path}", pool_size=1)
    barrier.wait()
    answers = []
    for run_id in run_ids:
        with db.session() as session:
            result = flow_runs.set_state(session, uuid.UUID(run_id), StateCreate(type=StateType.PENDING))
        answers.append((run_id, result.status.value if result else "MISSING"))
    db.dispose()
    out.put(answers)


@pytest.mark.slow
def test_processes_sharing_one_sqlite_file_claim_each_run_once(tmp_path: Path) -> None:
    from orch.control_plane.db import migrate
    from orch.control_plane.db.engine import Database
    from orch.control_plane.models import flow_runs, flows
    from orch.control_plane.schemas.flows import FlowCreate

    db_path = tmp_path / "shared.db"
    db = Database(f"sqlite:///{db_path}")
    migrate.upgrade(db)
    with db.session() as session:
        flow = flows.create(session, FlowCreate(name="processes"))
        run_ids = []
        for _ in range(10):
            run, _ = flow_runs.create(
                session, FlowRunCreate(flow_id=flow.id, state=StateCreate(type=StateType.SCHEDULED))
            )
            run_ids.append(str(run.id))
    db.dispose()

    ctx = multiprocessing.get_context("spawn")
    workers = 3
    barrier = ctx.Barrier(workers)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_process_claimer, args=(str(db_path), run_ids[i:] + run_ids[:i], barrier, out))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    answers = [item for _ in procs for item in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    by_run: dict[str, Counter[str]] = {run_id: Counter() for run_id in run_ids}
    for run_id, status in answers:
        by_run[run_id][status] += 1
    for run_id, counts in by_run.items():
        assert counts == {"ACCEPT": 1, "REJECT": workers - 1}, run_id
    db = Database(f"sqlite:///{db_path}")
    with db.session(write=False) as session:
        for run_id in run_ids:
            history = flow_runs.read_states(session, uuid.UUID(run_id))
            assert [s.type for s in history] == [StateType.SCHEDULED, StateType.PENDING]
    db.dispose()


# -- work-queue concurrency limit ----------------------------------------------------------------------------------


def test_work_queue_limit_makes_the_third_claim_wait(client: Any, database: Any) -> None:
    from orch.control_plane.db import orm

    queue = f"limited-{uuid.uuid4().hex[:6]}"
    with database.session() as session:
        session.add(orm.WorkQueue(name=queue, concurrency_limit=2))
    run_ids = _scheduled_runs(client, 5, work_queue_name=queue)
    answers = [client.set_flow_run_state(r, StateCreate(type=StateType.PENDING)) for r in run_ids[:3]]
    assert [a.status.value for a in answers] == ["ACCEPT", "ACCEPT", "WAIT"]
    assert answers[2].details.reason
    assert answers[2].details.delay_seconds is not None
    assert answers[2].details.delay_seconds > 0
    assert client.read_flow_run(run_ids[2]).state_type is StateType.SCHEDULED
    # A run that finishes frees its slot.
    client.set_flow_run_state(run_ids[0], StateCreate(type=StateType.RUNNING))
    client.set_flow_run_state(run_ids[0], StateCreate(type=StateType.COMPLETED))
    assert client.set_flow_run_state(run_ids[2], StateCreate(type=StateType.PENDING)).status.value == "ACCEPT"
    assert client.set_flow_run_state(run_ids[3], StateCreate(type=StateType.PENDING)).status.value == "WAIT"


def test_work_queue_limit_holds_under_concurrent_claims(client: Any, app: Any, database: Any) -> None:
    from orch.control_plane.db import orm

    queue = f"race-{uuid.uuid4().hex[:6]}"
    with database.session() as session:
        session.add(orm.WorkQueue(name=queue, concurrency_limit=2))
    run_ids = _scheduled_runs(client, 5, work_queue_name=queue)
    clients = _clients(app, 5)
    barrier = threading.Barrier(5)
    statuses: list[str] = []
    lock = threading.Lock()

    def claim(c: Any, run_id: str) -> None:
        barrier.wait()
        answer = c.set_flow_run_state(run_id, StateCreate(type=StateType.PENDING))
        with lock:
            statuses.append(answer.status.value)

    threads = [threading.Thread(target=claim, args=(c, r)) for c, r in zip(clients, run_ids, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    assert Counter(statuses) == {"ACCEPT": 2, "WAIT": 3}
    pending = [r for r in run_ids if client.read_flow_run(r).state_type is StateType.PENDING]
    assert len(pending) == 2


def test_concurrent_creates_with_one_idempotency_key_make_one_run(client: Any, app: Any) -> None:
    """A scheduler and its retry (or two schedulers) create the same (deployment, scheduled time) run at once."""
    from orch.client._embedded import EmbeddedTransport

    flow = client.create_flow("idempotent")
    body = {"flow_id": str(flow.id), "idempotency_key": "nightly@2030-01-01", "state": {"type": "SCHEDULED"}}
    barrier = threading.Barrier(8)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def create() -> None:
        import httpx

        with httpx.Client(transport=EmbeddedTransport(app), base_url="http://test/api") as own:
            barrier.wait()
            response = own.post("/flow_runs/", json=body)
        with lock:
            answers.append((response.status_code, response.json().get("id", response.text)))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(code for code, _ in answers) == [200] * 7 + [201], answers
    assert len({run_id for _, run_id in answers}) == 1
    assert client.count_flow_runs() == 1
    assert len(client.read_flow_run_states(answers[0][1])) == 1
