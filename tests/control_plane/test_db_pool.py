"""The PostgreSQL pool pings a connection only after it sat idle, and replaces one the server closed meanwhile."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_connection_closed_by_the_server_while_idle_is_replaced(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orch.control_plane.db import engine as engine_module

    db = engine_module.Database(database_url)
    try:
        with db.engine.connect() as conn:
            first_pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        # The server ends that backend while the connection sits in the pool (a restart, failover or idle timeout).
        with db.engine.connect() as other:
            pass
        admin = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid}).scalar_one()
        admin.dispose()
        monkeypatch.setattr(engine_module, "IDLE_PING_SECONDS", 0.0)
        with db.engine.connect() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        assert pid != first_pid
        assert other is not None
    finally:
        db.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_connection_used_a_moment_ago_is_not_pinged(database_url: str) -> None:
    """Without the ping, a busy API does one round trip less per request: count the statements the pool sends."""
    from orch.control_plane.db import engine as engine_module

    db = engine_module.Database(database_url)
    statements: list[str] = []
    sa.event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        for _ in range(3):
            with db.engine.connect() as conn:
                conn.execute(sa.text("SELECT 42"))
        assert statements == ["SELECT 42"] * 3
    finally:
        db.dispose()
