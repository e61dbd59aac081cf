"""Shared fixtures: an isolated ``ORCH_HOME`` for every test, databases on SQLite and PostgreSQL, in-process API
clients over the real app, and helpers for real server processes.

``database`` is parametrised: a test that uses it runs once on SQLite and once on a real PostgreSQL server that
the harness starts itself (``tests/plugins/postgres.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.plugins.ports import free_port

pytest_plugins = ["tests.plugins.parallel", "tests.plugins.postgres", "tests.plugins.aws"]

REPO_ROOT = Path(__file__).resolve().parent.parent
ORCH_ENV_VARS = [name for name in os.environ if name.startswith("ORCH_")]


def _clear_caches() -> None:
    from orch.control_plane.db.engine import reset_databases
    from orch.control_plane.settings import clear_settings_cache as clear_server_settings
    from orch.settings import clear_settings_cache

    clear_settings_cache()
    clear_server_settings()
    reset_databases()
    try:
        from orch.client import reset_clients
        from orch.client._embedded import forget_embedded_apps

        reset_clients()
        forget_embedded_apps()
    except ImportError:  # pragma: no cover - client not importable in a broken tree
        pass


@pytest.fixture(autouse=True)
def orch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own ORCH_HOME and none of the developer's ORCH_* settings or AWS credentials."""
    for name in list(os.environ):
        if name.startswith("ORCH_"):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "orch-home"
    home.mkdir()
    monkeypatch.setenv("ORCH_HOME", str(home))
    monkeypatch.setenv("ORCH_LOG_TO_CONSOLE", "false")
    _clear_caches()
    yield home
    _clear_caches()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, orch_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, migrated database: once on SQLite, once on a real PostgreSQL (dropped afterwards)."""
    from orch.control_plane.db import migrate
    from orch.control_plane.db.engine import get_database

    if request.param == "sqlite":
        url = f"sqlite:///{orch_home / 'orch.db'}"
        monkeypatch.setenv("ORCH_DATABASE_URL", url)
        _clear_caches()
        migrate.upgrade(get_database(url))
        yield url
        return
    from tests.plugins.postgres import new_postgres_database

    server = request.getfixturevalue("postgres_server")
    url = new_postgres_database(server)
    monkeypatch.setenv("ORCH_DATABASE_URL", url)
    _clear_caches()
    yield url
    _clear_caches()
    # FORCE: a pool of this test's engine (or a helper thread's) may still hold a connection.
    server.execute_autocommit(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[-1]} WITH (FORCE)")


@pytest.fixture
def database(database_url: str) -> Any:
    """The ``Database`` (engine + sessions) for ``database_url``."""
    from orch.control_plane.db.engine import get_database

    return get_database(database_url)


@pytest.fixture
def app(database: Any) -> Any:
    from orch.control_plane.api.app import create_app
    from orch.control_plane.settings import get_settings

    return create_app(get_settings(), database=database)


@pytest.fixture
def api(app: Any) -> Iterator[httpx.Client]:
    """A raw HTTP client on the in-process app (base URL ends in /api)."""
    from orch.client._embedded import EmbeddedTransport

    with httpx.Client(transport=EmbeddedTransport(app), base_url="http://test/api") as client:
        yield client


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    """An ``OrchClient`` on the in-process app."""
    from orch.client import OrchClient
    from orch.client._embedded import EmbeddedTransport
    from orch.settings import get_settings

    with OrchClient(get_settings(), transport=EmbeddedTransport(app)) as c:
        yield c


# -- real processes ------------------------------------------------------------------------------------------------


class ServerProcess:
    """``orch server start`` as a real uvicorn process on a free port."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orch.cli", "server", "start", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return int(self.proc.returncode)


def orch_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a child orch process: this one's, minus ORCH_*, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env["ORCH_HOME"] = str(home)
    env.update(extra)
    return env


@pytest.fixture
def server_process(orch_home: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    """A running ``orch server start`` on SQLite in this test's ORCH_HOME."""
    server = ServerProcess(orch_env(orch_home), free_port(), tmp_path / "server.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
