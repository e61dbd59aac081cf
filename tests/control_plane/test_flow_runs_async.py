"""The hot routes' async path on PostgreSQL (``models.flow_runs.create_async`` / ``set_state_async``) against the sync
path (``create_for_api`` / ``set_state`` in a session) on a real PostgreSQL.

- Both paths write the same rows: the run's columns and its history, for runs created with and without a state, in
  a work queue, with parameters, tags and a retry policy, then driven to the end; and the async path answers and
  writes the same whether its pool remembers the runs it wrote (transitions decided without a read, see
  ``test_flow_runs_remembered``) or not.
- Many claims of one run on one event loop: one ACCEPT. Claims of many runs of a work queue with a concurrency
  limit, all at once: exactly the limit is accepted (the queue row lock).
- Creates racing with one idempotency key: one run, and every answer names it.
- A refused first state writes nothing (and an unknown flow is still a 404 then); a value PostgreSQL refuses is a
  422 with a detail, never a 500.
The SQLite side of the API keeps the sync path; the API test modules run on both databases.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from orch.control_plane.schemas.flow_runs import FlowRunCreate
from orch.control_plane.schemas.states import StateCreate, StateType
from orch.exceptions import InvalidInput, ObjectNotFound

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]

# Differ between any two runs, whichever path made them.
_VOLATILE = {"id", "name", "created", "updated", "state_timestamp", "start_time", "end_time", "heartbeat_time"}
_VOLATILE |= {"expected_start_time", "total_run_time", "idempotency_key"}


def _flow(database: Any) -> uuid.UUID:
    from orch.control_plane.db import orm

    with database.session() as session:
        flow = orm.Flow(name=f"async-{uuid.uuid4().hex[:8]}")
        session.add(flow)
        session.flush()
        return flow.id


def _queue(database: Any, limit: int | None = None) -> str:
    from orch.control_plane.db import orm

    name = f"q-{uuid.uuid4().hex[:8]}"
    with database.session() as session:
        session.add(orm.WorkQueue(name=name, concurrency_limit=limit))
    return name


def _stored(database: Any, run_id: uuid.UUID) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's row and its history, without what differs from run to run."""
    import sqlalchemy as sa

    from orch.control_plane.db import orm

    with database.session(write=False) as session:
        row = session.execute(sa.select(orm.FlowRun.__table__).where(orm.FlowRun.id == run_id)).mappings().one()
        history = session.execute(
            sa.select(orm.FlowRunState.__table__)
            .where(orm.FlowRunState.flow_run_id == run_id)
            .order_by(orm.FlowRunState.timestamp, orm.FlowRunState.created)
        ).mappings()
        states = [
            {k: _timeless(k, v) for k, v in h.items() if k in {"type", "name", "message", "state_details", "data"}}
            for h in history
        ]
    return {k: _timeless(k, v) for k, v in row.items() if k not in _VOLATILE}, states


def _timeless(name: str, value: Any) -> Any:
    # A Scheduled state's details carry the time it was scheduled for ("now" when not given): keep that it is set.
    if name in {"state_details"} and isinstance(value, dict) and "scheduled_time" in value:
        return {**value, "scheduled_time": "set"}
    return value


def _sync_create(database: Any, data: FlowRunCreate) -> uuid.UUID:
    from orch.control_plane.models import flow_runs

    with database.session() as session:
        run, _created = flow_runs.create_for_api(session, data)
    return run.id


def _sync_set_state(database: Any, run_id: uuid.UUID, proposed: StateCreate) -> str:
    from orch.control_plane.models import flow_runs

    with database.session() as session:
        result = flow_runs.set_state(session, run_id, proposed)
    assert result is not None
    return result.status.value


def test_both_paths_write_the_same_rows(database: Any) -> None:
    from orch.control_plane.models import flow_runs

    flow_id = _flow(database)
    queue = _queue(database)
    bodies: list[dict[str, Any]] = [
        {},
        {"state": StateCreate(type=StateType.SCHEDULED)},
        {"state": StateCreate(type=StateType.SCHEDULED, message="soon"), "work_queue_name": queue},
        {"state": StateCreate(type=StateType.PENDING), "work_queue_name": queue},
        {
            "state": StateCreate(type=StateType.RUNNING),
            "parameters": {"x": [1, 2], "y": None},
            "tags": ["a", "b"],
            "empirical_policy": {"retries": 2, "retry_delay": 0},
            "idempotency_key": "k",
        },
    ]
    then = [StateType.PENDING, StateType.RUNNING, StateType.FAILED, StateType.RUNNING, StateType.COMPLETED]

    async def via_async(data: FlowRunCreate, remember: bool) -> tuple[uuid.UUID, list[str]]:
        if not remember:
            database.async_pg.current().recent.size = 0
        run, created = await flow_runs.create_async(database, data)
        assert created
        statuses = []
        for state_type in then:
            result = await flow_runs.set_state_async(database, run.id, StateCreate(type=state_type))
            assert result is not None
            statuses.append(result.status.value)
        return run.id, statuses

    for body in bodies:
        keyed = {"idempotency_key": "sync"} if "idempotency_key" in body else {}
        sync_id = _sync_create(database, FlowRunCreate(flow_id=flow_id, **{**body, **keyed}))
        sync_statuses = [_sync_set_state(database, sync_id, StateCreate(type=t)) for t in then]
        for remember in (True, False):
            keyed = {"idempotency_key": f"async-{remember}"} if "idempotency_key" in body else {}
            data = FlowRunCreate(flow_id=flow_id, **{**body, **keyed})
            async_id, async_statuses = asyncio.run(via_async(data, remember))
            assert async_statuses == sync_statuses, (body, remember)
            assert _stored(database, async_id) == _stored(database, sync_id), (body, remember)


def test_the_answer_to_create_is_the_stored_run(api: httpx.Client, database: Any) -> None:
    """What ``POST /flow_runs/`` answers (built from the INSERT's ``RETURNING``) is what a read answers later."""
    flow_id = str(_flow(database))
    created = api.post("/flow_runs/", json={"flow_id": flow_id, "tags": ["t"], "state": {"type": "SCHEDULED"}})
    assert created.status_code == 201, created.text
    assert api.get(f"/flow_runs/{created.json()['id']}").json() == created.json()
    bare = api.post("/flow_runs/", json={"flow_id": flow_id})
    assert bare.status_code == 201, bare.text
    assert bare.json()["state"] is None
    assert api.get(f"/flow_runs/{bare.json()['id']}").json() == bare.json()


def test_many_claims_of_one_run_on_one_loop_have_one_winner(database: Any) -> None:
    from orch.control_plane.models import flow_runs

    run_id = _sync_create(database, FlowRunCreate(flow_id=_flow(database), state=StateCreate(type=StateType.SCHEDULED)))

    async def claims() -> list[str]:
        results = await asyncio.gather(
            *(flow_runs.set_state_async(database, run_id, StateCreate(type=StateType.PENDING)) for _ in range(24))
        )
        return [r.status.value for r in results if r is not None]

    statuses = asyncio.run(claims())
    assert len(statuses) == 24
    assert statuses.count("ACCEPT") == 1, statuses
    _row, history = _stored(database, run_id)
    assert [h["type"] for h in history] == ["SCHEDULED", "PENDING"]


def test_claims_all_at_once_in_a_limited_work_queue_accept_exactly_the_limit(database: Any) -> None:
    from orch.control_plane.models import flow_runs

    flow_id = _flow(database)
    queue = _queue(database, limit=3)
    runs = [
        _sync_create(
            database, FlowRunCreate(flow_id=flow_id, work_queue_name=queue, state=StateCreate(type=StateType.SCHEDULED))
        )
        for _ in range(10)
    ]

    async def claims() -> list[str]:
        results = await asyncio.gather(
            *(flow_runs.set_state_async(database, r, StateCreate(type=StateType.PENDING)) for r in runs)
        )
        return [r.status.value for r in results if r is not None]

    statuses = asyncio.run(claims())
    assert sorted(statuses) == ["ACCEPT"] * 3 + ["WAIT"] * 7, statuses
    assert sum(_stored(database, r)[0]["state_type"] == "PENDING" for r in runs) == 3


def test_creates_racing_with_one_idempotency_key_make_one_run(database: Any) -> None:
    from orch.control_plane.models import flow_runs

    data = FlowRunCreate(flow_id=_flow(database), idempotency_key="once", state=StateCreate(type=StateType.SCHEDULED))

    async def creates() -> list[tuple[Any, bool]]:
        return await asyncio.gather(*(flow_runs.create_async(database, data) for _ in range(12)))

    answers = asyncio.run(creates())
    assert [created for _run, created in answers].count(True) == 1
    assert len({run.id for run, _created in answers}) == 1
    _row, history = _stored(database, answers[0][0].id)
    assert [h["type"] for h in history] == ["SCHEDULED"]


def test_a_refused_first_state_writes_nothing(database: Any) -> None:
    import sqlalchemy as sa

    from orch.control_plane.db import orm
    from orch.control_plane.models import flow_runs

    completed = StateCreate(type=StateType.COMPLETED)
    with pytest.raises(InvalidInput, match="refused"):
        asyncio.run(flow_runs.create_async(database, FlowRunCreate(flow_id=_flow(database), state=completed)))
    # As on the sync path, which inserts before it proposes: an unknown flow is reported first.
    with pytest.raises(ObjectNotFound, match="does not exist"):
        asyncio.run(flow_runs.create_async(database, FlowRunCreate(flow_id=uuid.uuid4(), state=completed)))
    with database.session(write=False) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(orm.FlowRun)) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(orm.FlowRunState)) == 0


def test_values_postgresql_refuses_are_422_not_500(api: httpx.Client, database: Any) -> None:
    flow_id = str(_flow(database))
    nul = api.post("/flow_runs/", json={"flow_id": flow_id, "state": {"type": "SCHEDULED", "message": "a\u0000b"}})
    assert nul.status_code == 422, nul.text
    assert nul.json()["detail"]
    run = api.post("/flow_runs/", json={"flow_id": flow_id, "state": {"type": "SCHEDULED"}}).json()
    answer = api.post(f"/flow_runs/{run['id']}/set_state", json={"state": {"type": "PENDING", "message": "\u0000"}})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]
    unknown = api.post(f"/flow_runs/{uuid.uuid4()}/set_state", json={"state": {"type": "PENDING"}})
    assert unknown.status_code == 404
    assert "not found" in unknown.json()["detail"]
