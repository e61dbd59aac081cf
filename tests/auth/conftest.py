"""Fixtures for the authentication tests: real ``orch server start`` processes in the modes that matter, keys
minted straight into their database (as ``orch server bootstrap-key`` does), and the CLI run in-process.

``AuthServer`` binds where the test says (``0.0.0.0`` for the "public bind" mode) but is always reached through
127.0.0.1: no test traffic leaves the machine.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import _clear_caches, free_port, orch_env

_SERVER_START = (sys.executable, "-m", "orch.cli", "server", "start")


class AuthServer:
    """``orch server start --host HOST`` on a free port, its output (uvicorn's and orch's logs) kept in a file."""

    def __init__(self, home: Path, *, host: str = "0.0.0.0", log_level: str = "info", **env: str) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_url = f"sqlite:///{home / 'orch.db'}"
        self.log = home / "server.log"
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [*_SERVER_START, "--host", host, "--port", str(self.port), "--log-level", log_level, "--no-services"],
            env=orch_env(home, **env),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> AuthServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> str:
        """Stop the server and return everything it wrote."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return self.log.read_text(errors="replace")

    def key(self, scope: str, name: str | None = None, **kwargs: Any) -> str:
        """A new key of ``scope`` stored straight into the server's database."""
        return mint_key(self.db_url, scope, name=name or f"{scope}-key", **kwargs)

    def get(self, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, key, **kwargs)

    def request(self, method: str, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
        """A request to ``/api{path}`` (or to ``path`` itself when it starts with ``/api/`` or ``/docs/``)."""
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        full = path if path.startswith(("/api/", "/docs/")) else f"/api{path}"
        return httpx.request(method, f"{self.url}{full}", headers=headers, timeout=30, **kwargs)


def orch(home: Path, *args: str, input: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``orch ARGS`` as a real process with ``home`` as ORCH_HOME."""
    return subprocess.run(
        [sys.executable, "-m", "orch.cli", *args],
        env=orch_env(home, **env),
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
        check=False,
    )


def mint_key(db_url: str, scope: str, *, name: str = "test", expires_at: Any = None) -> str:
    """Create a key in the database of ``db_url`` (migrating it first) and return the full key."""
    from orch.control_plane.db import migrate
    from orch.control_plane.db.engine import Database
    from orch.control_plane.models import api_keys

    db = Database(db_url, pool="null")
    try:
        migrate.ensure_up_to_date(db)
        with db.session() as session:
            _row, key = api_keys.create(session, name=name, scope=scope, expires_at=expires_at)
        return key.full
    finally:
        db.dispose()


@pytest.fixture
def public_server(tmp_path: Path) -> Iterator[AuthServer]:
    """A server bound to 0.0.0.0 (authentication always on), on SQLite in its own home."""
    home = tmp_path / "server-home"
    home.mkdir()
    server = AuthServer(home, host="0.0.0.0", ORCH_AUTH_FAILURE_LIMIT="1000")
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the ``orch`` CLI in this process (``cli("auth", "status")``) and return its exit code and output."""
    monkeypatch.setenv("COLUMNS", "250")  # Rich tables must not wrap key ids across lines

    def run(*args: str, input: str | None = None) -> CliResult:
        from orch.cli import main

        _clear_caches()
        capsys.readouterr()
        if input is not None:
            import io

            monkeypatch.setattr("sys.stdin", io.StringIO(input))
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.2) -> Any:
    """Poll until ``predicate()`` is truthy (returns it) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
