"""Migrations on a fresh, empty database (SQLite and PostgreSQL): upgrade to head, downgrade to base (nothing left
but ``alembic_version``), upgrade again; the migrated schema matches the ORM exactly; SQLite runs in WAL mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orch.control_plane.db import migrate
from orch.control_plane.db.engine import Database
from orch.control_plane.db.orm import Base

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        from tests.plugins.postgres import new_postgres_database

        url = new_postgres_database(request.getfixturevalue("postgres_server"), migrated=False)
    db = Database(url)
    yield db
    db.dispose()


def _tables(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def _schema_differences(db: Database) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_database: Database) -> None:
    db = empty_database
    assert _tables(db) == set()
    assert migrate.current_revision(db) is None

    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()
    assert _tables(db) == set(Base.metadata.tables) | {"alembic_version"}

    migrate.downgrade(db, "base")
    assert migrate.current_revision(db) is None
    assert _tables(db) == {"alembic_version"}

    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()
    assert _tables(db) == set(Base.metadata.tables) | {"alembic_version"}


def test_migrated_schema_matches_the_orm(empty_database: Database) -> None:
    migrate.upgrade(empty_database)
    assert _schema_differences(empty_database) == []


def test_ensure_up_to_date_is_idempotent(empty_database: Database) -> None:
    migrate.ensure_up_to_date(empty_database)
    migrate.ensure_up_to_date(empty_database)
    assert migrate.current_revision(empty_database) == migrate.head_revision()


def test_every_migration_step_downgrades_and_upgrades(empty_database: Database) -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrate.MIGRATIONS_DIR))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    for revision in revisions:
        migrate.upgrade(empty_database, revision)
        assert migrate.current_revision(empty_database) == revision
    for revision in reversed(revisions):
        migrate.downgrade(empty_database, "-1")
        assert migrate.current_revision(empty_database) != revision
    assert migrate.current_revision(empty_database) is None


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    db.dispose()
    assert (tmp_path / "wal.db").exists()


def test_a_database_with_the_head_revision_but_another_schema_is_refused_in_one_line(
    empty_database: Database, tmp_path: Path
) -> None:
    """Before the first release the one migration is regenerated; a database an earlier build made carries the same
    revision with another schema. Starting on it must say so (and how to get out), not answer 503 to every call."""
    import subprocess
    import sys

    from orch.exceptions import ConfigurationError
    from tests.conftest import free_port, orch_env

    migrate.upgrade(empty_database)
    migrate.ensure_up_to_date(empty_database)  # the real schema passes
    with empty_database.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE flow_runs DROP COLUMN dispatched_for"))
    with pytest.raises(ConfigurationError, match=r"lacks flow_runs\.dispatched_for: an earlier development build"):
        migrate.ensure_up_to_date(empty_database)
    url = empty_database.url.render_as_string(hide_password=False)
    cli = subprocess.run(
        [sys.executable, "-m", "orch.cli", "server", "start", "--port", str(free_port())],
        env=orch_env(tmp_path, ORCH_DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 2
    errors = [line for line in cli.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "flow_runs.dispatched_for" in errors[0], cli.stderr
    assert "Traceback" not in cli.stderr
    if empty_database.dialect == "postgresql":
        assert empty_database.url.password is None or empty_database.url.password not in cli.stderr


def test_head_revision_read_from_the_files_is_alembics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``head_revision`` reads the migration files without Alembic; it must name the head Alembic would, and refuse
    a folder with two heads."""
    from alembic.script import ScriptDirectory

    assert migrate.head_revision() == ScriptDirectory(str(migrate.MIGRATIONS_DIR)).get_current_head()
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (versions / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (versions / "b.py").write_text('revision: str = "b"\ndown_revision: str | None = "a"\n')
    (versions / "c.py").write_text("revision = 'c'\ndown_revision = 'a'\n")
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path / "migrations")
    migrate.head_revision.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"one head, found \['b', 'c'\]"):
            migrate.head_revision()
        (versions / "c.py").write_text("revision = 'c'\ndown_revision = 'b'\n")
        migrate.head_revision.cache_clear()
        assert migrate.head_revision() == "c"
    finally:
        migrate.head_revision.cache_clear()


def test_a_current_database_is_checked_without_importing_alembic(tmp_path: Path) -> None:
    """Every embedded flow run and server start checks the schema; on a current database that must not load
    Alembic (~150 ms and ~20,000 objects for the garbage collector). A fresh interpreter proves it."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'current.db'}"
    migrate.upgrade(Database(url))
    code = (
        "import sys\n"
        "from orch.control_plane.db import migrate\n"
        "from orch.control_plane.db.engine import Database\n"
        f"migrate.ensure_up_to_date(Database({url!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
