"""Run Alembic migrations programmatically: the only way the schema is created or changed.

Alembic itself (and Mako, which it loads) is imported only to migrate. Checking that a database is current, what
every ``orch server start``, Lambda cold start and embedded flow run does, reads the head revision from the
migration files and the database's from ``alembic_version`` directly: importing Alembic costs ~150 ms and leaves
~20,000 objects in the process, which the embedded control plane's garbage collections would rescan for the
rest of the user's program.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from orch.control_plane.db.engine import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(None|['\"]([^'\"]+)['\"])", re.MULTILINE)


def alembic_config(db: Database) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = db.engine
    return cfg


@functools.cache
def head_revision() -> str:
    """The newest revision of the migration files (the one no other revision follows); a test checks it against
    Alembic's own answer."""
    revisions: set[str] = set()
    followed: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(text), _DOWN_REVISION.search(text)
        if revision is None or down is None:
            continue
        revisions.add(revision.group(1))
        if down.group(2):
            followed.add(down.group(2))
    heads = sorted(revisions - followed)
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {MIGRATIONS_DIR} must have one head, found {heads or 'none'}")
    return heads[0]


def current_revision(db: Database) -> str | None:
    """The revision the database is stamped with (``None`` for an empty database)."""
    with db.engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:
        raise RuntimeError(f"the database is stamped with several revisions: {sorted(rows)}")
    return rows[0] if rows else None


def upgrade(db: Database, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(db), revision)


def downgrade(db: Database, revision: str = "base") -> None:
    from alembic import command

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
