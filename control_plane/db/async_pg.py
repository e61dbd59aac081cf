"""Asynchronous PostgreSQL connections for the hot routes: a small pool of psycopg ``AsyncConnection`` per event loop.

The two calls every run makes four times (create, ``set_state``) are a couple of short statements each. Through
the synchronous engine they pay for a hop to a worker thread (and back) and a SQLAlchemy session around them;
on PostgreSQL the hot routes instead await psycopg's async connections on the event loop itself, from this pool.
Everything else keeps the engine and its sessions (``db.engine``).

A connection belongs to the event loop that opened it, so there is one pool per running loop (a server worker has
one; the embedded API has its own thread's loop; tests may run several). Each pool opens at most ``size``
connections (``ORCH_DATABASE_POOL_SIZE``, as the engine's pool) and keeps them: under load no connection is opened
and closed per request (the engine's overflow connections are, and a PostgreSQL backend costs milliseconds to
start). Connections are in autocommit mode; a caller that needs a transaction opens one
(``conn.transaction()``). As with the engine, a connection idle for ``IDLE_PING_SECONDS`` is pinged before use and
replaced if the ping fails, and one that comes back broken or inside a transaction (a cancelled request) is closed.

Each pool also keeps ``recent``: rows its connections wrote last (``RecentRows``), for writes that can decide on
what they wrote before instead of reading it again (the flow-run transitions of ``models.flow_runs``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from psycopg import AsyncConnection

IDLE_PING_SECONDS = 10.0
# ``RecentRows``: how many rows a pool remembers (~1.1 KB each, a flow run's view: ~2 MB per worker at most), and for
# how long (a run's transitions mostly come seconds apart; a row older than this is read again).
RECENT_ROWS = 2048
RECENT_ROWS_SECONDS = 300.0


class RecentRows:
    """Rows as this event loop's connections last wrote them, keyed by the caller (a run's id): the least recently
    written are dropped beyond ``size``, and a row older than ``max_age`` seconds is never handed out.

    A remembered row is only a guess at the row's current content: any other writer (another worker, another
    process, a person with ``psql``) may have changed it since. Callers use it only with a write that is
    conditional on the row's version and fall back to reading the row when that write matches nothing. The age
    limit keeps a version from being mistaken for a later one after PostgreSQL's 32-bit transaction ids wrap
    around (billions of transactions later).
    """

    __slots__ = ("_rows", "max_age", "size")

    def __init__(self, size: int = RECENT_ROWS, max_age: float = RECENT_ROWS_SECONDS) -> None:
        self._rows: dict[object, tuple[dict[str, Any], float]] = {}
        self.size = size
        self.max_age = max_age

    def take(self, key: object) -> dict[str, Any] | None:
        """The row remembered for ``key``, forgotten here (the caller remembers what it writes next)."""
        entry = self._rows.pop(key, None)
        if entry is None or time.monotonic() - entry[1] >= self.max_age:
            return None
        return entry[0]

    def put(self, key: object, row: dict[str, Any]) -> None:
        rows = self._rows
        rows.pop(key, None)  # re-inserted last: the dict's order is the order of the writes
        rows[key] = (row, time.monotonic())
        if len(rows) > self.size:
            del rows[next(iter(rows))]

    def __len__(self) -> int:
        return len(self._rows)


class AsyncPool:
    """At most ``size`` connections for one event loop; callers beyond that wait for one to come back."""

    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo = conninfo
        self.size = size
        self._idle: collections.deque[tuple[AsyncConnection, float]] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[AsyncConnection | None]] = collections.deque()
        self.opened = 0  # connections open or being opened (idle ones included)
        self.recent = RecentRows()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection for the block; psycopg's errors come out as SQLAlchemy's (the API maps those to 409, 422
        or 503, as for the engine's sessions)."""
        from psycopg import Error

        try:
            conn = await self._acquire()
            try:
                yield conn
            finally:
                self._release(conn)
        except Error as exc:
            raise DBAPIError.instance(None, None, exc, Error) from exc

    async def _acquire(self) -> AsyncConnection:
        while True:
            while self._idle:
                # Last in, first out: the most recently used connection is the one least likely to be stale.
                conn, idle_since = self._idle.pop()
                if await self._usable(conn, idle_since):
                    return conn
            if self.opened < self.size:
                return await self._open()
            waiter: asyncio.Future[AsyncConnection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                conn_or_none = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # woken just as we were cancelled: pass it on
                    handed = waiter.result()
                    if handed is not None:
                        self._release(handed)
                    else:
                        self._wake_one(None)
                raise
            if conn_or_none is not None:
                return conn_or_none
            # A connection was closed instead of handed over: there is room to open one.

    async def _open(self) -> AsyncConnection:
        from psycopg import AsyncConnection

        self.opened += 1
        try:
            return await AsyncConnection.connect(self._conninfo, autocommit=True)
        except BaseException:
            self.opened -= 1
            self._wake_one(None)
            raise

    async def _usable(self, conn: AsyncConnection, idle_since: float) -> bool:
        if conn.closed or conn.broken:
            self._forget(conn)
            return False
        if time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return True
        try:
            await conn.execute("SELECT 1")
        except Exception:  # the server, a proxy or a failover closed it while it sat idle: open another
            self._forget(conn)
            return False
        return True

    def _release(self, conn: AsyncConnection) -> None:
        from psycopg.pq import TransactionStatus

        idle = conn.info.transaction_status == TransactionStatus.IDLE
        if conn.closed or conn.broken or not idle or self.opened > self.size:
            # Broken, left mid-statement or mid-transaction (a cancelled request), or the pool is closing.
            self._forget(conn)
            self._wake_one(None)
            return
        if not self._wake_one(conn):
            self._idle.append((conn, time.monotonic()))

    def _wake_one(self, conn: AsyncConnection | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    def _forget(self, conn: AsyncConnection) -> None:
        self.opened -= 1
        _finish(conn)

    def close_now(self) -> None:
        """Close the idle connections at once, from any thread (connections in use are closed as they return)."""
        self.size = 0
        while self._idle:
            conn, _ = self._idle.pop()
            self.opened -= 1
            _finish(conn)


def _finish(conn: AsyncConnection) -> None:
    # Synchronous close of the socket: the pool may be dropped from outside its loop (dispose, tests).
    with contextlib.suppress(Exception):
        conn.pgconn.finish()


class AsyncPools:
    """The pool of each running event loop, for one database."""

    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo = conninfo
        self._size = size
        self._lock = threading.Lock()
        self._pools: dict[asyncio.AbstractEventLoop, AsyncPool] = {}

    def current(self) -> AsyncPool:
        """The running loop's pool (created on first use); pools of loops that have closed are dropped."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is not None:
            return pool
        with self._lock:
            for other in [other for other in self._pools if other.is_closed()]:
                self._pools.pop(other).close_now()
            pool = self._pools[loop] = AsyncPool(self._conninfo, self._size)
            return pool

    def connection(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return self.current().connection()

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close_now()
            self._pools.clear()
