"""The engine every launcher starts: ``python -m orch.engine FLOW_RUN_ID`` and ``orch flow-run execute ID``.

Its exit code is the contract the launchers read (``orch.agents.infrastructure.EXIT_*``): 0 Completed, 1 Failed
(the flow's own outcome), 2 bad command line, 3 the engine could not run the flow (the run is reported Crashed).
Real engine processes against a real ``orch server start``, with the deployed ``mark`` flow of ``helpers.py``,
which counts its executions.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orch.agents.infrastructure import EXIT_COMPLETED, EXIT_CRASHED, EXIT_FAILED
from tests.agents.helpers import client_for, create_runs, deploy, executions, write_project
from tests.conftest import ServerProcess, orch_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run(env: dict[str, str], *command: str, run_id_env: bool = True) -> subprocess.CompletedProcess[str]:
    # The run id in the environment too, as every launcher sets it (the ``mark`` flow reads it); without it, the
    # engine must set it itself.
    run_env = {name: value for name, value in env.items() if name != "ORCH_FLOW_RUN_ID"}
    if run_id_env:
        run_env["ORCH_FLOW_RUN_ID"] = command[-1]
    return subprocess.run(
        [sys.executable, *command], env=run_env, capture_output=True, text=True, timeout=120, check=False
    )


def _state(client: Any, run_id: str) -> Any:
    return client.read_flow_run(run_id).state


def test_engine_exit_codes_tell_success_from_failure_from_crash(
    server_process: ServerProcess, orch_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_for(server_process.url, monkeypatch)
    markers = tmp_path / "markers"
    storage = tmp_path / "bundles"
    deployment = deploy(client, write_project(tmp_path / "project", markers), storage)
    engine_home = tmp_path / "engine-home"
    env = orch_env(engine_home, ORCH_API_URL=server_process.url)
    (ok, ok_cli) = create_runs(client, deployment.id, 2)
    (bad, bad_cli) = create_runs(client, deployment.id, 2, parameters={"fail": True})

    # Started by hand, without the run id in the environment: the flow still finds it there.
    done = _run(env, "-m", "orch.engine", ok, run_id_env=False)
    assert done.returncode == EXIT_COMPLETED, done.stderr
    assert _state(client, ok).type.value == "COMPLETED"
    done = _run(env, "-m", "orch.cli", "flow-run", "execute", ok_cli, run_id_env=False)
    assert done.returncode == EXIT_COMPLETED, done.stderr
    assert _state(client, ok_cli).type.value == "COMPLETED"

    failed = _run(env, "-m", "orch.engine", bad)
    assert failed.returncode == EXIT_FAILED, failed.stderr
    assert _state(client, bad).type.value == "FAILED"
    failed = _run(env, "-m", "orch.cli", "flow-run", "execute", bad_cli)
    assert failed.returncode == EXIT_FAILED, failed.stderr
    assert _state(client, bad_cli).type.value == "FAILED"
    assert executions(markers) == {ok: 1, ok_cli: 1, bad: 1, bad_cli: 1}

    # The bundle cannot be fetched (storage gone, and a fresh home without the cached copy): Crashed, with the
    # reason.
    shutil.rmtree(storage)
    (lost,) = create_runs(client, deployment.id, 1)
    crashed = _run(orch_env(tmp_path / "fresh-home", ORCH_API_URL=server_process.url), "-m", "orch.engine", lost)
    assert crashed.returncode == EXIT_CRASHED, crashed.stderr
    state = _state(client, lost)
    assert state.type.value == "CRASHED"
    assert state.message.startswith("The engine could not run the flow")
    assert "Traceback" not in crashed.stderr
    assert lost not in executions(markers)

    # Bad settings: nothing can reach a server, so the engine says why in one line and exits as a crash.
    (unsent,) = create_runs(client, deployment.id, 1)
    misconfigured = _run(orch_env(engine_home, ORCH_API_URL="ftp://example.invalid"), "-m", "orch.engine", unsent)
    assert misconfigured.returncode == EXIT_CRASHED, misconfigured.stderr
    assert "Traceback" not in misconfigured.stderr
    assert len(misconfigured.stderr.strip().splitlines()) == 1, misconfigured.stderr
    assert unsent not in executions(markers)

    # A bad command line: exit 2, one line, the run untouched.
    for args in ([], ["not-a-uuid"], [ok, ok]):
        usage = _run(env, "-m", "orch.engine", *args)
        assert usage.returncode == 2, (args, usage.stderr)
        assert len(usage.stderr.strip().splitlines()) == 1, usage.stderr
    usage = _run(env, "-m", "orch.cli", "flow-run", "execute", "not-a-uuid")
    assert usage.returncode == 2
    assert usage.stderr.strip() == "Error: 'not-a-uuid' is not a flow run id (a UUID such as 0b7e8f3c-...)."
    client.close()
