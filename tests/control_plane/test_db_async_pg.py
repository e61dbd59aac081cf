"""The hot routes' async PostgreSQL pool (``orch.control_plane.db.async_pg``) on a real PostgreSQL.

- It never opens more than its size, however many callers; callers beyond it wait and all get served.
- A connection the server closed while it sat idle is replaced by the idle ping; one closed a moment after use
  fails that one request with a 503 and a detail (as the engine's pool does), and the next request is served.
- A request cancelled mid-statement does not give its connection back to others; the pool keeps serving.
- One pool per event loop; ``Database.dispose()`` closes them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]


def _conninfo(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://")


def _terminate_other_backends(database_url: str) -> int:
    with psycopg.connect(_conninfo(database_url), autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_never_more_connections_than_its_size(database_url: str) -> None:
    from orch.control_plane.db.async_pg import AsyncPool

    pool = AsyncPool(_conninfo(database_url), size=3)
    most = 0
    backends: set[int] = set()

    async def use(n: int) -> int:
        nonlocal most
        async with pool.connection() as conn:
            most = max(most, pool.opened)
            cursor = await conn.execute("SELECT pg_backend_pid(), %s::int FROM pg_sleep(0.01)", (n,))
            row = await cursor.fetchone()
            assert row is not None
            backends.add(row[0])
            return int(row[1])

    async def main() -> list[int]:
        try:
            return await asyncio.gather(*(use(n) for n in range(20)))
        finally:
            pool.close_now()

    assert asyncio.run(main()) == list(range(20))
    assert most == 3
    assert len(backends) == 3


def test_a_connection_closed_while_idle_is_replaced_by_the_ping(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orch.control_plane.db import async_pg

    pool = async_pg.AsyncPool(_conninfo(database_url), size=1)

    async def pid() -> int:
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
            assert row is not None
            return int(row[0])

    async def main() -> tuple[int, int]:
        try:
            first = await pid()
            assert _terminate_other_backends(database_url) == 1
            monkeypatch.setattr(async_pg, "IDLE_PING_SECONDS", 0.0)
            return first, await pid()
        finally:
            pool.close_now()

    first, second = asyncio.run(main())
    assert second != first


def test_a_connection_lost_just_after_use_costs_one_503_then_the_api_serves(
    api: httpx.Client, database_url: str
) -> None:
    flow = api.post("/flows/", json={"name": "lost"}).json()
    body = {"flow_id": flow["id"], "state": {"type": "SCHEDULED"}}
    assert api.post("/flow_runs/", json=body).status_code == 201
    assert _terminate_other_backends(database_url) >= 1
    answers = [api.post("/flow_runs/", json=body) for _ in range(3)]
    assert {a.status_code for a in answers} <= {201, 503}, [a.text for a in answers]
    assert answers[-1].status_code == 201, answers[-1].text
    for refused in [a for a in answers if a.status_code == 503]:
        assert refused.json()["detail"]
        assert refused.headers["Retry-After"]


def test_a_request_cancelled_mid_statement_leaves_the_pool_serving(database_url: str) -> None:
    from orch.control_plane.db.async_pg import AsyncPool

    pool = AsyncPool(_conninfo(database_url), size=1)

    async def slow() -> None:
        async with pool.connection() as conn:
            await conn.execute("SELECT pg_sleep(30)")

    async def main() -> int:
        try:
            task = asyncio.create_task(slow())
            await asyncio.sleep(0.3)  # let the statement reach the server
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert pool.opened <= 1
            async with pool.connection() as conn:
                row = await (await conn.execute("SELECT 7")).fetchone()
                assert row is not None
                return int(row[0])
        finally:
            pool.close_now()

    assert asyncio.run(main()) == 7


def test_one_pool_per_event_loop_and_dispose_closes_them(database_url: str) -> None:
    from orch.control_plane.db.engine import Database

    db = Database(database_url)
    assert db.async_pg is not None
    pools = db.async_pg

    async def backend() -> tuple[Any, int]:
        async with pools.connection() as conn:
            row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
            assert row is not None
            return pools.current(), int(row[0])

    first_pool, first_pid = asyncio.run(backend())
    second_pool, second_pid = asyncio.run(backend())
    assert first_pool is not second_pool
    assert first_pid != second_pid
    db.dispose()
    with psycopg.connect(_conninfo(database_url), autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid = ANY(%s)",
            ([first_pid, second_pid],),
        ).fetchone()
    assert row is not None
    assert row[0] == 0


def test_no_async_pool_without_a_pool_or_on_sqlite(database_url: str, tmp_path: Any) -> None:
    """Lambda (``ORCH_DATABASE_POOL=null``) and SQLite keep the sync path."""
    from orch.control_plane.db.engine import Database

    for db in (Database(database_url, pool="null"), Database(f"sqlite:///{tmp_path / 'x.db'}")):
        try:
            assert db.async_pg is None
        finally:
            db.dispose()
