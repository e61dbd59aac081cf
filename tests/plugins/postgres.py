"""A real PostgreSQL server for the test session, started from the system's binaries (initdb, pg_ctl).

The server lives in a throwaway folder, listens on a free loopback port, trusts local connections, and is stopped
and deleted at the end of the session. Sessions run as root here and ``initdb`` refuses root, so when running as
root the server runs as the ``postgres`` system user (see shared/notes/machine.md).

Each test that asks for PostgreSQL gets a fresh database cloned from a migrated template (``CREATE DATABASE ...
TEMPLATE``), which takes a few tens of milliseconds instead of a migration per test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.ports import free_port

TEMPLATE_DB = "orch_template"


class PostgresServer:
    def __init__(self, root: Path, port: int, as_user: str | None) -> None:
        self.root = root
        self.port = port
        self.as_user = as_user
        self.data = root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.as_user, "--", *args] if self.as_user else list(args)

    def start(self) -> None:
        subprocess.run(
            self._cmd("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"),
            check=True,
            capture_output=True,
        )
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        subprocess.run(
            self._cmd("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "start", "-w"),
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(self._cmd("pg_ctl", "-D", str(self.data), "stop", "-m", "immediate", "-w"), capture_output=True)

    def execute_autocommit(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(sql)  # type: ignore[arg-type]


def _start_server() -> PostgresServer:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    as_user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="orch-pg-"))
    if as_user:
        shutil.chown(root, user=as_user, group=None)
    server = PostgresServer(root, free_port(), as_user)
    server.start()
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = _start_server()
    try:
        from orch.control_plane.db import migrate
        from orch.control_plane.db.engine import Database

        server.execute_autocommit(f"CREATE DATABASE {TEMPLATE_DB}")
        template = Database(server.url(TEMPLATE_DB))
        migrate.upgrade(template)
        template.dispose()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def new_postgres_database(server: PostgresServer, *, migrated: bool = True) -> str:
    """A fresh database (migrated, from the template, or empty) and its URL."""
    name = f"orch_{uuid.uuid4().hex[:12]}"
    template = f" TEMPLATE {TEMPLATE_DB}" if migrated else ""
    server.execute_autocommit(f"CREATE DATABASE {name}{template}")
    return server.url(name)
