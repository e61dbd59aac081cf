"""``ORCH_SERVICES_ENABLED=false`` must keep ``orch server start`` from running its services loop.

The serverless deployment relies on it: on AWS the services run from EventBridge, and a control plane that also
ticked by itself would duplicate them. The end-to-end test (test_localstack_e2e.py) relies on the setting alone.

Detection: a deployment with an interval schedule exists before the server starts; a services loop creates its
runs on its first tick, which happens as the server starts. The control server (services on) proves that the
check sees such runs within the wait.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, free_port, orch_env
from tests.deployments.helpers import make_deployment, runs_of

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

WAIT = 5.0


def _runs_created_by_a_server(home: Path, log: Path, **env: str) -> int:
    """Start a server on a fresh SQLite database in ``home`` holding one scheduled deployment; how many runs it
    created within WAIT seconds of answering."""
    from orch.control_plane.db import migrate
    from orch.control_plane.db.engine import Database

    home.mkdir()
    db = Database(f"sqlite:///{home / 'orch.db'}")
    try:
        migrate.upgrade(db)
        deployment = make_deployment(db, schedules=[{"interval": 10}])
        server = ServerProcess(orch_env(home, ORCH_SERVICES_INTERVAL="0.2", **env), free_port(), log)
        try:
            server.wait_ready()
            deadline = time.monotonic() + WAIT
            while not runs_of(db, deployment) and time.monotonic() < deadline:
                time.sleep(0.2)
            return len(runs_of(db, deployment))
        finally:
            server.stop()
    finally:
        db.dispose()


def test_the_check_sees_a_services_loop(tmp_path: Path) -> None:
    assert _runs_created_by_a_server(tmp_path / "on", tmp_path / "on.log") > 0


def test_orch_services_enabled_false_turns_the_loop_off(tmp_path: Path) -> None:
    assert _runs_created_by_a_server(tmp_path / "off", tmp_path / "off.log", ORCH_SERVICES_ENABLED="false") == 0
