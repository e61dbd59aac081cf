"""Run Alembic migrations programmatically: the only way the schema is created or changed."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from orch.control_plane.db.engine import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = db.engine
    return cfg


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> None:
    command.upgrade(alembic_config(db), revision)


def downgrade(db: Database, revision: str = "base") -> None:
    command.downgrade(alembic_config(db), revision)


# Any constant works; it only has to be the same for every orch process migrating one PostgreSQL database.
_MIGRATION_LOCK_ID = 0x6F726368  # "orch"


def ensure_up_to_date(db: Database) -> None:
    """Upgrade to head if the database is behind (cheap when it is current).

    On PostgreSQL an advisory lock makes concurrent starters (Lambda cold starts, several servers) migrate one at
    a time; the others find the schema current when they get the lock. SQLite serialises writers by itself.
    """
    head = head_revision()
    if current_revision(db) == head:
        check_schema(db)
        return
    if db.dialect != "postgresql":
        upgrade(db)
        return
    with db.engine.connect() as lock_conn:
        lock_conn.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        try:
            if current_revision(db) != head:
                upgrade(db)
        finally:
            lock_conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
            lock_conn.commit()


def check_schema(db: Database) -> None:
    """Refuse, in one line, a database stamped with the head revision that lacks the head's tables or columns.

    Before the first release the single migration is regenerated when the schema changes, so a database made by an
    earlier development build carries the same revision id with another schema; without this check every request
    would fail with "no such column". Costs one catalog read per table, once per process.
    """
    from orch.control_plane.db import orm
    from orch.exceptions import ConfigurationError

    inspector = sa.inspect(db.engine)
    tables = set(inspector.get_table_names())
    missing: list[str] = []
    for table in orm.Base.metadata.sorted_tables:
        if table.name not in tables:
            missing.append(table.name)
            continue
        columns = {column["name"] for column in inspector.get_columns(table.name)}
        missing += [f"{table.name}.{column.name}" for column in table.columns if column.name not in columns]
    if missing:
        where = db.url.database if db.is_sqlite else db.url.render_as_string(hide_password=True)
        raise ConfigurationError(
            f"The database {where} is at revision {head_revision()} but lacks {', '.join(missing[:3])}"
            f"{' and more' if len(missing) > 3 else ''}: an earlier development build of orch made it. "
            "Move it away (or point ORCH_DATABASE_URL at another database) and start again."
        )
