"""Transitions decided on a remembered run (``set_state_async`` with ``AsyncPool.recent``) on a real PostgreSQL.

Each event loop's pool remembers the runs it last wrote; the next transition of such a run is decided on that row
and written only if the row is still the version decided on (``xmin``). These tests change the run behind the
memory's back with every kind of writer there is — a heartbeat, a PATCH, the sync transition path (the services),
another worker's loop, a delete, a delete and re-create with the same id, SQL that touches no version column, a
concurrent transaction that commits while the transition waits for the row — and check that the transition then
reads the run and decides on what is there, exactly as without the memory. Without a change, a transition is one
statement. The statements a transition sends are observed by wrapping ``PG.fetch`` and ``PG.scalar`` (spies: every
call goes on to PostgreSQL unchanged). And what is remembered after a write is what a read answers then.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from orch.control_plane.db.flow_run_statements import PG
from orch.control_plane.schemas.flow_runs import FlowRunCreate, FlowRunUpdate
from orch.control_plane.schemas.states import StateCreate, StateType

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]

T = TypeVar("T")
SCHEDULED, PENDING, RUNNING = StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING
COMPLETED, FAILED = StateType.COMPLETED, StateType.FAILED


class Statements:
    """What the async path sends through ``PG.fetch`` and ``PG.scalar``: reads of a run's view, conditional writes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[str] = []
        for name in ("fetch", "scalar"):
            monkeypatch.setattr(PG, name, self._spy(getattr(PG, name)))

    def _spy(self, real: Any) -> Any:
        async def send(conn: Any, sql: str, params: dict[str, Any]) -> Any:
            self.sent.append(sql)
            return await real(conn, sql, params)

        return send

    def reset(self) -> None:
        self.sent.clear()

    @property
    def reads(self) -> int:
        return self.sent.count(PG.select_versioned_view)

    @property
    def writes(self) -> int:
        return self.sent.count(PG.versioned_write_sql)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Statements:
    return Statements(monkeypatch)


class Worker:
    """An event loop of its own in a thread, kept running across calls: one server worker's loop (and pool, and
    memory), beside the test's own ``asyncio.run`` loops."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker()
    yield w
    w.stop()


def _flow(database: Any) -> uuid.UUID:
    from orch.control_plane.db import orm

    with database.session() as session:
        flow = orm.Flow(name=f"memory-{uuid.uuid4().hex[:8]}")
        session.add(flow)
        session.flush()
        return flow.id


async def _create(database: Any, flow_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    from orch.control_plane.models import flow_runs

    fields.setdefault("state", StateCreate(type=SCHEDULED))
    run, created = await flow_runs.create_async(database, FlowRunCreate(flow_id=flow_id, **fields))
    assert created
    return run.id


async def _propose(database: Any, run_id: uuid.UUID, type: StateType, **kw: Any) -> tuple[str, str | None]:
    """(status, the state type answered) or ("MISSING", None)."""
    from orch.control_plane.models import flow_runs

    result = await flow_runs.set_state_async(database, run_id, StateCreate.model_validate({"type": type, **kw}))
    if result is None:
        return "MISSING", None
    return result.status.value, result.state.type.value if result.state is not None else None


def _row(database: Any, run_id: uuid.UUID) -> dict[str, Any]:
    import sqlalchemy as sa

    from orch.control_plane.db import orm

    with database.session(write=False) as session:
        return dict(session.execute(sa.select(orm.FlowRun.__table__).where(orm.FlowRun.id == run_id)).mappings().one())


def _history(database: Any, run_id: uuid.UUID) -> list[str]:
    from orch.control_plane.models import flow_runs

    with database.session(write=False) as session:
        return [s.type.value for s in flow_runs.read_states(session, run_id)]


def _other_connection(database: Any) -> Any:
    """A psycopg connection of its own (a transaction nobody else's code runs)."""
    import psycopg

    return psycopg.AsyncConnection.connect(database.url.set(drivername="postgresql").render_as_string(False))


def _sql(database: Any, sql: str, **params: Any) -> None:
    import sqlalchemy as sa

    with database.session() as session:
        session.execute(sa.text(sql), params)


def test_without_a_change_a_transition_is_one_statement(database: Any, statements: Statements) -> None:
    flow_id = _flow(database)

    async def main() -> list[tuple[str, str | None]]:
        run_id = await _create(database, flow_id)
        statements.reset()
        answers = [await _propose(database, run_id, t) for t in (PENDING, RUNNING, COMPLETED)]
        assert (statements.reads, statements.writes, len(statements.sent)) == (0, 3, 3)
        return answers

    assert asyncio.run(main()) == [("ACCEPT", "PENDING"), ("ACCEPT", "RUNNING"), ("ACCEPT", "COMPLETED")]


def test_what_is_remembered_is_what_a_read_answers(database: Any) -> None:
    """The remembered row is built from the write (not read back): after every write it equals a read of the run,
    value for value, whatever the proposal carried (a time with an offset, a message, details); a state with
    ``data`` (any JSON, which ``jsonb`` may change) is not remembered."""
    from orch.control_plane.db.async_pg import AsyncPool

    flow_id = _flow(database)
    plus_two = dt.timezone(dt.timedelta(hours=2))
    proposals: list[dict[str, Any]] = [
        {"type": PENDING, "message": "claimed", "state_details": {"retriable": True}},
        {"type": RUNNING, "timestamp": dt.datetime.now(plus_two) - dt.timedelta(seconds=1)},
        {"type": StateType.PAUSED, "state_details": {"pause_key": "k", "pause_timeout": "2031-01-01T00:00:00+05:00"}},
        {"type": RUNNING, "name": "Resumed", "message": "ünïcode ✓"},
        {"type": FAILED, "message": "boom", "state_details": {"cache_key": "c", "traceback": "Traceback...\n"}},
        {"type": SCHEDULED, "state_details": {"scheduled_time": "2020-05-06T07:08:09.123456-03:00"}},
        {"type": PENDING},
        {"type": RUNNING, "data": {"b": 1e16, "a": [1, 2.5, None]}},
        {"type": COMPLETED},
    ]

    async def remembered(pool: AsyncPool, run_id: uuid.UUID) -> dict[str, Any] | None:
        row = pool.recent.take(run_id)
        if row is not None:
            pool.recent.put(run_id, row)
        return row

    async def main() -> None:
        pool: AsyncPool = database.async_pg.current()
        run_id = await _create(database, flow_id, empirical_policy={"retries": 0})
        for proposal in [{}, *proposals]:
            if proposal:
                status, _ = await _propose(database, run_id, **proposal)
                assert status == "ACCEPT", proposal
            async with pool.connection() as conn:
                read = await PG.fetch(conn, PG.select_versioned_view, {"run_id": run_id})
            kept = await remembered(pool, run_id)
            if proposal.get("data") is not None:
                assert kept is None
                assert read["state_data"] == proposal["data"]  # equal, but not the same: 1e16 came back an int
                assert type(read["state_data"]["b"]) is int
                assert list(read["state_data"]) == ["a", "b"]
            else:
                assert kept == read, proposal
                assert [type(v) for v in kept.values()] == [type(v) for v in read.values()]

    asyncio.run(main())


def test_a_heartbeat_since_is_read_and_kept(database: Any, statements: Statements) -> None:
    from orch.control_plane.models import flow_runs

    flow_id = _flow(database)

    async def main() -> tuple[uuid.UUID, dt.datetime | None]:
        run_id = await _create(database, flow_id)
        await _propose(database, run_id, PENDING)
        await _propose(database, run_id, RUNNING)
        await asyncio.sleep(0.01)
        with database.session() as session:
            beat = flow_runs.heartbeat(session, run_id)
            assert beat is not None
            beat_time = beat.heartbeat_time
        statements.reset()
        assert await _propose(database, run_id, COMPLETED) == ("ACCEPT", "COMPLETED")
        assert statements.reads == 1
        return run_id, beat_time

    run_id, beat_time = asyncio.run(main())
    # Decided on the remembered row, the write would have put back the heartbeat time it remembered.
    assert _row(database, run_id)["heartbeat_time"] == beat_time


def test_a_retry_policy_patched_since_is_obeyed(database: Any, statements: Statements) -> None:
    from orch.control_plane.models import flow_runs

    flow_id = _flow(database)

    async def main() -> tuple[str, str | None]:
        run_id = await _create(database, flow_id)
        await _propose(database, run_id, PENDING)
        await _propose(database, run_id, RUNNING)
        with database.session() as session:
            flow_runs.update(session, run_id, FlowRunUpdate.model_validate({"empirical_policy": {"retries": 1}}))
        statements.reset()
        answer = await _propose(database, run_id, FAILED)
        assert statements.reads == 1
        return answer

    # The remembered row has no retries: it would have accepted Failed.
    assert asyncio.run(main()) == ("REJECT", "SCHEDULED")  # AwaitingRetry


def test_sql_changing_a_column_without_any_version_column_is_seen(database: Any, statements: Statements) -> None:
    """Not a heartbeat, not a PATCH, no ``state_version`` and no ``updated``: any write makes a new row version."""
    flow_id = _flow(database)

    async def main() -> tuple[str, str | None]:
        run_id = await _create(database, flow_id)
        await _propose(database, run_id, PENDING)
        await _propose(database, run_id, RUNNING)
        _sql(database, "UPDATE flow_runs SET empirical_policy = '{\"retries\": 2}' WHERE id = :id", id=run_id)
        statements.reset()
        answer = await _propose(database, run_id, FAILED)
        assert statements.reads == 1
        return answer

    assert asyncio.run(main()) == ("REJECT", "SCHEDULED")


def test_a_write_to_a_column_the_rules_never_read_still_sends_the_transition_to_a_read(
    database: Any, statements: Statements
) -> None:
    """The dispatcher's ``dispatched_for``, a deleted deployment's ``SET NULL``: harmless, but a change all the same."""
    flow_id = _flow(database)

    async def main() -> uuid.UUID:
        run_id = await _create(database, flow_id)
        await _propose(database, run_id, PENDING)
        _sql(database, "UPDATE flow_runs SET dispatched_for = now() WHERE id = :id", id=run_id)
        statements.reset()
        assert await _propose(database, run_id, RUNNING) == ("ACCEPT", "RUNNING")
        assert (statements.reads, statements.writes) == (1, 2)  # the remembered try, then the read one
        statements.reset()
        assert await _propose(database, run_id, COMPLETED) == ("ACCEPT", "COMPLETED")
        assert statements.reads == 0  # remembered again from that write
        return run_id

    run_id = asyncio.run(main())
    assert _history(database, run_id) == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]
    assert _row(database, run_id)["state_version"] == 4


def test_a_transition_through_the_sync_path_since_is_seen(database: Any, statements: Statements) -> None:
    """The services (late runs, zombies, the scheduler) change states through ``set_state`` on a session."""
    from orch.control_plane.models import flow_runs

    flow_id = _flow(database)

    async def main() -> uuid.UUID:
        run_id = await _create(database, flow_id)
        await _propose(database, run_id, PENDING)
        with database.session() as session:
            result = flow_runs.set_state(session, run_id, StateCreate(type=RUNNING))
            assert result is not None and result.status.value == "ACCEPT"
        statements.reset()
        assert await _propose(database, run_id, COMPLETED) == ("ACCEPT", "COMPLETED")
        assert statements.reads == 1
        return run_id

    run_id = asyncio.run(main())
    row = _row(database, run_id)
    assert _history(database, run_id) == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]
    assert (row["state_version"], row["run_count"]) == (4, 1)
    assert row["start_time"] is not None  # Running, which the remembered Pending row never saw, was counted


def test_another_workers_transition_is_seen(database: Any, statements: Statements, worker: Worker) -> None:
    flow_id = _flow(database)
    # Worker A creates the run and takes it to Pending: A remembers it.
    run_id = worker.run(_create(database, flow_id))
    assert worker.run(_propose(database, run_id, PENDING)) == ("ACCEPT", "PENDING")
    # Worker B (another loop, another pool) moves it on twice.
    assert asyncio.run(_propose(database, run_id, RUNNING)) == ("ACCEPT", "RUNNING")
    assert asyncio.run(_propose(database, run_id, COMPLETED)) == ("ACCEPT", "COMPLETED")
    statements.reset()
    # A still remembers Pending, where Running would be accepted; the run is Completed.
    assert worker.run(_propose(database, run_id, RUNNING)) == ("REJECT", "COMPLETED")
    assert statements.reads == 1
    assert _history(database, run_id) == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]


def test_a_deleted_run_is_missing(database: Any, statements: Statements) -> None:
    from orch.control_plane.models import flow_runs

    flow_id = _flow(database)

    async def main() -> tuple[str, str | None]:
        run_id = await _create(database, flow_id)
        with database.session() as session:
            assert flow_runs.delete(session, run_id)
        return await _propose(database, run_id, PENDING)

    assert asyncio.run(main()) == ("MISSING", None)


def test_a_run_deleted_and_created_again_with_its_id_is_the_new_run(database: Any, statements: Statements) -> None:
    from orch.control_plane.models import flow_runs

    flow_id = _flow(database)
    run_id = uuid.uuid4()

    async def main() -> tuple[str, str | None]:
        await _create(database, flow_id, id=run_id)
        await _propose(database, run_id, PENDING)
        await _propose(database, run_id, RUNNING)
        with database.session() as session:
            assert flow_runs.delete(session, run_id)
        with database.session() as session:
            flow_runs.create_for_api(
                session, FlowRunCreate(id=run_id, flow_id=flow_id, state=StateCreate(type=SCHEDULED))
            )
        statements.reset()
        answer = await _propose(database, run_id, PENDING)
        assert statements.reads == 1
        return answer

    # The remembered run was Running, where a claim is refused.
    assert asyncio.run(main()) == ("ACCEPT", "PENDING")
    assert _history(database, run_id) == ["SCHEDULED", "PENDING"]


def test_a_refusal_decided_on_the_memory_is_decided_again_on_a_read(database: Any, statements: Statements) -> None:
    """A refusal writes nothing, so nothing would check the row's version: it is never answered from memory."""
    from orch.control_plane.models import flow_runs

    flow_id = _flow(database)

    async def main() -> None:
        # Nothing changed: the refusal stands, after one read.
        run_id = await _create(database, flow_id)
        for t in (PENDING, RUNNING, COMPLETED):
            await _propose(database, run_id, t)
        statements.reset()
        assert (await _propose(database, run_id, PENDING))[0] == "REJECT"
        assert (statements.reads, statements.writes) == (1, 0)
        # Re-run by an operator (forced, on the sync path) while this loop remembers the run Completed.
        run_id = await _create(database, flow_id)
        for t in (PENDING, RUNNING, COMPLETED):
            await _propose(database, run_id, t)
        with database.session() as session:
            result = flow_runs.set_state(session, run_id, StateCreate(type=SCHEDULED), force=True)
            assert result is not None and result.status.value == "ACCEPT"
        statements.reset()
        assert await _propose(database, run_id, PENDING) == ("ACCEPT", "PENDING")
        assert (statements.reads, statements.writes) == (1, 1)

    asyncio.run(main())


def test_a_write_that_commits_while_the_transition_waits_for_the_row_is_seen(
    database: Any, statements: Statements
) -> None:
    """The transition's conditional write blocks on the other transaction's row lock; when that commits, the row is
    a new version, so the write matches nothing and the transition reads the committed row."""
    flow_id = _flow(database)
    beat = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

    async def main() -> uuid.UUID:
        run_id = await _create(database, flow_id)
        await _propose(database, run_id, PENDING)
        await _propose(database, run_id, RUNNING)
        other = await _other_connection(database)
        try:
            await other.execute("UPDATE flow_runs SET heartbeat_time = %s WHERE id = %s", (beat, run_id))
            statements.reset()
            transition = asyncio.create_task(_propose(database, run_id, COMPLETED))
            # Until the other transaction ends, the transition's write waits for the row.
            for _ in range(200):
                await asyncio.sleep(0.01)
                if statements.writes:
                    break
            await asyncio.sleep(0.2)
            assert not transition.done()
            await other.commit()
            assert await transition == ("ACCEPT", "COMPLETED")
            assert (statements.reads, statements.writes) == (1, 2)
        finally:
            await other.close()
        return run_id

    run_id = asyncio.run(main())
    assert _row(database, run_id)["heartbeat_time"] == beat


def test_a_write_rolled_back_changes_nothing_and_the_memory_holds(database: Any, statements: Statements) -> None:
    flow_id = _flow(database)

    async def main() -> uuid.UUID:
        run_id = await _create(database, flow_id)
        await _propose(database, run_id, PENDING)
        other = await _other_connection(database)
        try:
            await other.execute("UPDATE flow_runs SET state_message = 'never' WHERE id = %s", (run_id,))
            await other.rollback()
        finally:
            await other.close()
        statements.reset()
        assert await _propose(database, run_id, RUNNING) == ("ACCEPT", "RUNNING")
        assert statements.reads == 0
        return run_id

    run_id = asyncio.run(main())
    assert _history(database, run_id) == ["SCHEDULED", "PENDING", "RUNNING"]


def test_many_claims_of_a_remembered_run_have_one_winner(database: Any) -> None:
    flow_id = _flow(database)

    async def main() -> tuple[uuid.UUID, list[str]]:
        run_id = await _create(database, flow_id)  # remembered by this loop
        answers = await asyncio.gather(*(_propose(database, run_id, PENDING) for _ in range(24)))
        return run_id, [status for status, _ in answers]

    run_id, statuses = asyncio.run(main())
    assert statuses.count("ACCEPT") == 1, statuses
    assert _history(database, run_id) == ["SCHEDULED", "PENDING"]


def test_remembered_claims_in_a_limited_work_queue_accept_exactly_the_limit(database: Any) -> None:
    from orch.control_plane.db import orm

    flow_id = _flow(database)
    queue = f"q-{uuid.uuid4().hex[:8]}"
    with database.session() as session:
        session.add(orm.WorkQueue(name=queue, concurrency_limit=3))

    async def main() -> list[str]:
        runs = [await _create(database, flow_id, work_queue_name=queue) for _ in range(10)]
        answers = await asyncio.gather(*(_propose(database, r, PENDING) for r in runs))
        return [status for status, _ in answers]

    assert sorted(asyncio.run(main())) == ["ACCEPT"] * 3 + ["WAIT"] * 7
