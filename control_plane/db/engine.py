"""Engines and sessions for SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout. Write transactions begin with ``BEGIN IMMEDIATE`` so that two writers
queue on the database lock up front instead of failing when a read lock is upgraded; reads begin ``DEFERRED`` and
never block writers. PostgreSQL uses psycopg 3 with a small pool, or none (``ORCH_DATABASE_POOL=null``) on Lambda;
with a pool, the hot routes also have async connections (``Database.async_pg``, see ``async_pg``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic_core import to_json
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from orch.control_plane.db.async_pg import AsyncPools

SQLITE_BUSY_TIMEOUT_MS = 30_000


class Database:
    """An engine plus the two kinds of session the API uses."""

    def __init__(self, url: str, *, pool: str = "queue", pool_size: int = 10) -> None:
        self.url = sa.make_url(url)
        self.dialect = self.url.get_backend_name()
        self.engine = _create_engine(self.url, pool=pool, pool_size=pool_size)
        writer = self.engine.execution_options(orch_begin="IMMEDIATE")
        self._write_sessions = sessionmaker(bind=writer, expire_on_commit=False)
        self._read_sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        # The hot routes' async connections: PostgreSQL with a pool only (Lambda serves one request at a time).
        self.async_pg: AsyncPools | None = None
        if self.dialect == "postgresql" and pool != "null":
            conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self.async_pg = AsyncPools(conninfo, pool_size)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def write_session(self) -> Session:
        return self._write_sessions()

    def read_session(self) -> Session:
        return self._read_sessions()

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        session = self.write_session() if write else self.read_session()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        if self.async_pg is not None:
            self.async_pg.close()
        self.engine.dispose()


def json_text(value: Any) -> str:
    """JSON columns' text on SQLite: pydantic-core's serializer, compact, in about half of ``json.dumps``'s time,
    which builds a new encoder on every call (every task run the SDK records writes its state history). It writes
    what ``json.dumps`` writes for the JSON types (NaN and infinities as their JavaScript constants, non-string
    keys as strings), UTF-8 instead of ``\\u`` escapes; a test compares both."""
    return to_json(value).decode()


def _create_engine(url: sa.URL, *, pool: str, pool_size: int) -> Engine:
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        kwargs["json_serializer"] = json_text
        if pool == "null":
            kwargs["poolclass"] = NullPool
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size * 2)
        engine = sa.create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    if pool == "null":
        kwargs["poolclass"] = NullPool
    else:
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)
    engine = sa.create_engine(url, **kwargs)
    if pool != "null":
        _ping_idle_connections(engine)
    return engine


IDLE_PING_SECONDS = 10.0


def _ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection before use only when it sat idle for a while.

    SQLAlchemy's ``pool_pre_ping`` costs a round trip on every checkout, i.e. on every API request. A connection
    that was in use a moment ago is alive; one that sat idle may have been closed by the server, a proxy or a
    failover, so that one is pinged, and replaced if the ping fails.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["orch_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("orch_idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another one.
            raise DisconnectionError(f"stale pooled connection: {type(exc).__name__}") from exc


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so that BEGIN is ours (DEFERRED or IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("orch_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


_lock = threading.Lock()
_databases: dict[tuple[str, str, int], Database] = {}


def get_database(url: str | None = None) -> Database:
    """The process-wide ``Database`` for a URL (default: from the settings)."""
    from orch.control_plane.settings import get_settings

    settings = get_settings()
    if url is None and settings.database_url is None and settings.database_secret_arn:
        from orch.control_plane.db.aws import resolve_url

        url = resolve_url(settings)
    key = (url or settings.resolved_database_url, settings.database_pool, settings.database_pool_size)
    with _lock:
        db = _databases.get(key)
        if db is None:
            db = _databases[key] = Database(key[0], pool=key[1], pool_size=key[2])
            if settings.database_iam_auth and db.dialect == "postgresql":
                from orch.control_plane.db.aws import enable_iam_auth

                enable_iam_auth(db.engine)
                # A token per connection is the engine's job: the hot routes go through it as well.
                db.async_pg = None
        return db


def reset_databases() -> None:
    """Dispose every cached engine (tests, and `orch db reset`)."""
    with _lock:
        for db in _databases.values():
            db.dispose()
        _databases.clear()
