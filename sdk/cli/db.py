"""``orch db``: migrate, roll back or reset the control plane's database (ORCH_DATABASE_URL or $ORCH_HOME/orch.db)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Manage the control plane's database schema.", no_args_is_help=True)


def _db():  # type: ignore[no-untyped-def]
    from orch.control_plane.db.engine import get_database
    from orch.control_plane.settings import get_settings

    return get_database(get_settings().resolved_database_url)


def _migrate(action: str, revision: str) -> str:
    """Run an Alembic action; a bad revision is the user's input, reported in one line."""
    from alembic.util.exc import CommandError

    from orch.control_plane.db import migrate
    from orch.exceptions import InvalidInput

    db = _db()
    try:
        getattr(migrate, action)(db, revision)
    except CommandError as exc:
        raise InvalidInput(f"Cannot {action} to {revision!r}: {exc}") from None
    return f"Database {_where(db)} is at revision {migrate.current_revision(db) or 'base'}."


def _where(db) -> str:  # type: ignore[no-untyped-def]
    return db.url.render_as_string(hide_password=True)


@app.command("upgrade")
def upgrade(revision: str = typer.Option("head", "--revision", "-r", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    typer.echo(_migrate("upgrade", revision))


@app.command("downgrade")
def downgrade(
    revision: str = typer.Option("-1", "--revision", "-r", help="Target revision: -1 for one step, base for none."),
) -> None:
    """Roll migrations back (one step by default)."""
    typer.echo(_migrate("downgrade", revision))


@app.command("reset")
def reset(yes: bool = typer.Option(False, "--yes", help="Confirm: every run, deployment and log is deleted.")) -> None:
    """Drop everything and migrate from scratch."""
    from orch.exceptions import InvalidInput

    if not yes:
        raise InvalidInput("`orch db reset` deletes all data; run it again with --yes to confirm.")
    _migrate("downgrade", "base")
    typer.echo(_migrate("upgrade", "head").replace(" is at ", " was reset to "))
