"""The ``orch`` CLI, called in-process through ``orch.cli.main`` (embedded mode on this test's ``ORCH_HOME``), and a
few times as a real subprocess: bad input exits 2 with one line on stderr and no traceback; ``--json`` prints the
API's objects and nothing else; ``flow-run logs`` pages past 1,000 lines; ``db upgrade/downgrade/reset`` work.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from orch.cli import main
from tests.conftest import _clear_caches, orch_env

pytestmark = pytest.mark.integration


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else (0 if code is None else 1)), out, err


def assert_refused(result: tuple[int, str, str], *words: str) -> None:
    code, out, err = result
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert "Traceback" not in out
    for word in words:
        assert word.lower() in err.lower(), err


@pytest.fixture
def client() -> Any:
    """The embedded client the CLI itself uses (same process, same ORCH_HOME)."""
    from orch.client import get_client

    return get_client()


def _run(client: Any, **fields: Any) -> Any:
    from orch.control_plane.schemas.flow_runs import FlowRunCreate
    from orch.control_plane.schemas.states import StateCreate, StateType

    flow = client.create_flow(fields.pop("flow", "cli-flow"))
    return client.create_flow_run(
        FlowRunCreate(flow_id=flow.id, state=StateCreate(type=fields.pop("state", StateType.SCHEDULED)), **fields)
    )


# -- bad input ------------------------------------------------------------------------------------------------------


def test_bad_run_id(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("inspect", "logs", "cancel", "delete"):
        assert_refused(run_cli(capsys, "flow-run", command, "not-a-uuid"), "not-a-uuid")


def test_unknown_run(capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(uuid.uuid4())
    for command in ("inspect", "logs", "cancel", "delete"):
        assert_refused(run_cli(capsys, "flow-run", command, missing), missing)


def test_unknown_state(capsys: pytest.CaptureFixture[str]) -> None:
    assert_refused(run_cli(capsys, "flow-run", "ls", "--state", "Bogus"), "Bogus")


def test_bad_level(capsys: pytest.CaptureFixture[str], client: Any) -> None:
    run = _run(client)
    assert_refused(run_cli(capsys, "flow-run", "logs", str(run.id), "--level", "LOUD"), "LOUD")


def test_out_of_range_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (
        ("flow-run", "ls", "--limit", "0"),
        ("flow-run", "ls", "--limit", "1001"),
        ("flow", "ls", "--limit", "0"),
    ):
        code, _out, err = run_cli(capsys, *args)
        assert code == 2, (args, code, err)
        assert "Traceback" not in err
        assert "unexpected" not in err.lower(), err


def test_db_reset_without_yes(capsys: pytest.CaptureFixture[str]) -> None:
    assert_refused(run_cli(capsys, "db", "reset"), "--yes")


def test_bad_revision(capsys: pytest.CaptureFixture[str]) -> None:
    assert_refused(run_cli(capsys, "db", "upgrade", "--revision", "nope"), "nope")
    assert_refused(run_cli(capsys, "db", "downgrade", "--revision", "nope"), "nope")


def test_bad_api_url(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_API_URL", "ftp://x")
    _clear_caches()
    assert_refused(run_cli(capsys, "flow-run", "ls"), "ORCH_API_URL")


def test_auth_off_on_a_public_address_is_refused_by_server_start(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_AUTH", "off")
    monkeypatch.setenv("ORCH_SERVER_HOST", "0.0.0.0")
    _clear_caches()
    assert_refused(run_cli(capsys, "server", "start"), "ORCH_AUTH=off")


def test_auth_off_on_a_public_address_is_one_line_for_db_commands_too(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same bad settings reach ``orch db upgrade`` through the control plane's settings: still one line, code 2."""
    monkeypatch.setenv("ORCH_AUTH", "off")
    monkeypatch.setenv("ORCH_SERVER_HOST", "0.0.0.0")
    _clear_caches()
    assert_refused(run_cli(capsys, "db", "upgrade"), "ORCH_AUTH=off")


def test_unreachable_server_is_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("ORCH_API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr("orch.client.RETRY_DELAYS", ())
    _clear_caches()
    assert_refused(run_cli(capsys, "flow-run", "ls"), "Cannot reach")


# -- --json -------------------------------------------------------------------------------------------------------


def test_flow_run_ls_json_matches_the_api(capsys: pytest.CaptureFixture[str], client: Any) -> None:
    from orch.control_plane.schemas.states import StateCreate, StateType

    first = _run(client, tags=["x"])
    second = _run(client, flow="other")
    client.set_flow_run_state(second.id, StateCreate(type=StateType.PENDING))
    code, out, err = run_cli(capsys, "flow-run", "ls", "--json")
    assert code == 0, err
    listed = json.loads(out)
    api = [r.model_dump(mode="json") for r in client.read_flow_runs()]
    assert sorted(listed, key=lambda r: r["id"]) == sorted(api, key=lambda r: r["id"])
    assert {r["id"] for r in listed} == {str(first.id), str(second.id)}
    # filters
    code, out, _ = run_cli(capsys, "flow-run", "ls", "--json", "--state", "PENDING")
    assert [r["id"] for r in json.loads(out)] == [str(second.id)]
    code, out, _ = run_cli(capsys, "flow-run", "ls", "--json", "--flow", "other")
    assert [r["id"] for r in json.loads(out)] == [str(second.id)]
    code, out, _ = run_cli(capsys, "flow-run", "ls", "--json", "--tag", "x")
    assert [r["id"] for r in json.loads(out)] == [str(first.id)]
    code, out, _ = run_cli(capsys, "flow-run", "ls", "--json", "--state", "late")
    assert json.loads(out) == []


def test_flow_run_inspect_and_flow_ls_json(capsys: pytest.CaptureFixture[str], client: Any) -> None:
    run = _run(client)
    code, out, err = run_cli(capsys, "flow-run", "inspect", str(run.id), "--json")
    assert code == 0, err
    assert json.loads(out) == client.read_flow_run(run.id).model_dump(mode="json")
    code, out, err = run_cli(capsys, "flow", "ls", "--json")
    assert code == 0, err
    assert json.loads(out) == [f.model_dump(mode="json") for f in client.read_flows()]


def test_human_output_is_a_table(capsys: pytest.CaptureFixture[str], client: Any) -> None:
    run = _run(client)
    code, out, err = run_cli(capsys, "flow-run", "ls")
    assert code == 0, err
    assert str(run.id)[:8] in out
    code, out, err = run_cli(capsys, "flow-run", "inspect", str(run.id))
    assert code == 0, err
    assert "State history" in out


# -- logs -----------------------------------------------------------------------------------------------------------


def test_flow_run_logs_pages_through_more_than_a_thousand_lines(
    capsys: pytest.CaptureFixture[str], client: Any
) -> None:
    run = _run(client)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    lines = [
        {
            "level": 30 if i % 10 == 0 else 20,
            "message": f"line {i}",
            "timestamp": (start + dt.timedelta(milliseconds=i)).isoformat(),
            "flow_run_id": str(run.id),
        }
        for i in range(2500)
    ]
    client.create_logs(lines)
    code, out, err = run_cli(capsys, "flow-run", "logs", str(run.id), "--limit", "5000", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert [log["message"] for log in got] == [f"line {i}" for i in range(2500)]
    code, out, err = run_cli(capsys, "flow-run", "logs", str(run.id), "--limit", "5000")
    assert code == 0, err
    printed = out.strip().splitlines()
    assert len(printed) == 2500
    assert printed[0].endswith("line 0")
    assert printed[-1].endswith("line 2499")
    code, out, _ = run_cli(capsys, "flow-run", "logs", str(run.id), "--level", "warning", "--limit", "5000", "--json")
    assert len(json.loads(out)) == 250
    code, out, _ = run_cli(capsys, "flow-run", "logs", str(run.id), "--json")
    assert len(json.loads(out)) == 1000, "the default limit"


# -- cancel / delete ------------------------------------------------------------------------------------------------


def test_cancel_and_delete(capsys: pytest.CaptureFixture[str], client: Any) -> None:
    run = _run(client)
    code, out, err = run_cli(capsys, "flow-run", "cancel", str(run.id))
    assert code == 0, err
    assert "Cancelled" in out
    assert client.read_flow_run(run.id).state_type.value == "CANCELLED"
    assert_refused(run_cli(capsys, "flow-run", "cancel", str(run.id)), "cannot cancel")
    code, out, err = run_cli(capsys, "flow-run", "delete", str(run.id))
    assert code == 0, err
    assert_refused(run_cli(capsys, "flow-run", "inspect", str(run.id)))


# -- db -------------------------------------------------------------------------------------------------------------


def test_db_upgrade_downgrade_reset(capsys: pytest.CaptureFixture[str], orch_home: Path, client: Any) -> None:
    from orch.control_plane.db import migrate

    head = migrate.head_revision()
    _run(client)
    code, out, err = run_cli(capsys, "db", "upgrade")
    assert code == 0, err
    assert head in out
    code, out, err = run_cli(capsys, "db", "downgrade", "--revision", "base")
    assert code == 0, err
    assert "base" in out
    code, out, err = run_cli(capsys, "db", "upgrade", "--revision", "head")
    assert code == 0, err
    assert head in out
    code, out, err = run_cli(capsys, "db", "reset", "--yes")
    assert code == 0, err
    assert "reset" in out
    assert head in out
    _clear_caches()
    from orch.client import get_client

    assert get_client().read_flow_runs() == []


# -- as real subprocesses -------------------------------------------------------------------------------------------


def _subprocess(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orch.cli", *args],
        env=orch_env(home, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_subprocess_bad_input_is_one_line_exit_2(orch_home: Path) -> None:
    for args, env in [
        (("flow-run", "inspect", "nope"), {}),
        (("flow-run", "ls"), {"ORCH_API_URL": "ftp://x"}),
        (("db", "reset"), {}),
    ]:
        result = _subprocess(orch_home, *args, **env)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""


@pytest.mark.slow
def test_subprocess_json_and_db_upgrade(orch_home: Path) -> None:
    upgraded = _subprocess(orch_home, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    listed = _subprocess(orch_home, "flow-run", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []


def test_state_names_are_matched_whatever_their_case(capsys: pytest.CaptureFixture[str], client: Any) -> None:
    """``--state`` accepts ``awaitingretry`` (the check lower-cases it), so it must also find AwaitingRetry runs."""
    from orch.control_plane.schemas.flow_runs import FlowRunUpdate
    from orch.control_plane.schemas.states import StateCreate, StateType

    run = _run(client, state=StateType.RUNNING)
    client.update_flow_run(run.id, FlowRunUpdate(empirical_policy={"retries": 1}))
    answer = client.set_flow_run_state(run.id, StateCreate(type=StateType.FAILED))
    assert answer.state is not None
    assert answer.state.name == "AwaitingRetry"
    for spelling in ("AwaitingRetry", "awaitingretry", "AWAITINGRETRY"):
        code, out, err = run_cli(capsys, "flow-run", "ls", "--json", "--state", spelling)
        assert code == 0, err
        assert [r["id"] for r in json.loads(out)] == [str(run.id)], spelling
