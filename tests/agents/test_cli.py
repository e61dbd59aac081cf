"""``orch work-queue create | ls | inspect | preview | pause | resume | delete`` and ``orch agent ls``.

The commands run in-process through ``orch.cli.main`` (the console script's entry point: same argument parsing,
error handling and exit codes as a real ``orch`` process) against the embedded control plane in the test's
``ORCH_HOME``. ``--json`` prints the API's objects and nothing else; bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def orch(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from orch.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def refused(result: tuple[int, str, str], needle: str) -> None:
    code, out, err = result
    assert code == 2, result
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err
    assert "Traceback" not in err


def test_work_queue_commands(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from orch.client import get_client

    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = orch(capsys, "work-queue", "create", "etl", "-p", "5", "-l", "2", "-d", "nightly loads")
    assert (code, out.strip()) == (0, "Created work queue 'etl'"), err
    code, out, _ = orch(capsys, "work-queue", "create", "adhoc", "--json")
    assert code == 0
    assert json.loads(out)["priority"] == 100

    # ls --json is the API's list, by priority.
    code, out, _ = orch(capsys, "work-queue", "ls", "--json")
    listed = json.loads(out)
    assert code == 0
    assert listed == get_client().request("POST", "/work_queues/filter", {})
    assert [(q["name"], q["priority"], q["concurrency_limit"]) for q in listed] == [("etl", 5, 2), ("adhoc", 100, None)]
    code, out, _ = orch(capsys, "work-queue", "ls")
    assert code == 0 and "etl" in out and "adhoc" in out

    # preview: the runs waiting, soonest first.
    client = get_client()
    flow_id = str(client.create_flow("cli-flow").id)
    waiting = []
    for minutes in (30, 5):
        at = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat()
        body = {"type": "SCHEDULED", "state_details": {"scheduled_time": at}}
        made = client.request("POST", "/flow_runs/", {"flow_id": flow_id, "work_queue_name": "etl", "state": body})
        waiting.append(made["id"])
    code, out, _ = orch(capsys, "work-queue", "preview", "etl", "--json")
    assert code == 0
    assert [r["id"] for r in json.loads(out)] == waiting[::-1]
    code, out, _ = orch(capsys, "work-queue", "preview", "etl")
    assert code == 0 and waiting[0] in out

    # inspect --json is the API's status object.
    code, out, _ = orch(capsys, "work-queue", "inspect", "etl", "--json")
    status = json.loads(out)
    assert code == 0
    assert status["work_queue"]["description"] == "nightly loads"
    assert (status["waiting"], status["active"], status["agents"]) == (0, 0, [])
    code, out, _ = orch(capsys, "work-queue", "inspect", "etl")
    assert code == 0 and "concurrency limit" in out and "dead letters" in out

    # pause / resume
    code, out, _ = orch(capsys, "work-queue", "pause", "etl")
    assert (code, out.strip()) == (0, "Work queue 'etl' paused.")
    assert json.loads(orch(capsys, "work-queue", "inspect", "etl", "--json")[1])["work_queue"]["paused"] is True
    code, out, _ = orch(capsys, "work-queue", "resume", "etl")
    assert (code, out.strip()) == (0, "Work queue 'etl' resumed.")
    assert json.loads(orch(capsys, "work-queue", "inspect", "etl", "--json")[1])["work_queue"]["paused"] is False

    # Bad input: one line, exit 2.
    refused(orch(capsys, "work-queue", "create", "etl"), "already exists")
    refused(orch(capsys, "work-queue", "create", "bad name!"), "name")
    for command in ("inspect", "preview", "pause", "resume"):
        refused(orch(capsys, "work-queue", command, "nosuch"), "'nosuch' not found")
    refused(orch(capsys, "work-queue", "delete", "etl"), "--yes")
    code, _, err = orch(capsys, "work-queue", "create", "x", "--priority", "0")
    assert code == 2 and "Traceback" not in err and "--priority" in err

    # delete
    code, out, _ = orch(capsys, "work-queue", "delete", "etl", "--yes")
    assert (code, out.strip()) == (0, "Deleted work queue 'etl'.")
    refused(orch(capsys, "work-queue", "delete", "etl", "--yes"), "'etl' not found")
    assert [q["name"] for q in json.loads(orch(capsys, "work-queue", "ls", "--json")[1])] == ["adhoc"]


def test_agent_ls(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from orch.client import get_client

    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = orch(capsys, "agent", "ls", "--json")
    assert (code, json.loads(out)) == (0, [])
    beat = {"name": "laptop-1", "work_queues": ["default", "etl"], "infra_type": "docker", "hostname": "laptop"}
    seen: dict[str, Any] = get_client().request("POST", "/agents/heartbeat", beat)
    code, out, _ = orch(capsys, "agent", "ls", "--json")
    (agent,) = json.loads(out)
    assert code == 0
    assert (agent["name"], agent["work_queues"], agent["infra_type"], agent["status"]) == (
        "laptop-1",
        ["default", "etl"],
        "docker",
        "ONLINE",
    )
    assert agent["last_seen"] == seen["last_seen"]
    code, out, _ = orch(capsys, "agent", "ls")
    assert code == 0
    assert "laptop-1" in out and "default, etl" in out and "s ago" in out


def test_agent_start_refuses_bad_options_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    refused(orch(capsys, "agent", "start", "-q", "default", "--infra", "kubernetes"), "Unknown infrastructure")
    code, _, err = orch(capsys, "agent", "start", "-q", "default", "--limit", "0")
    assert code == 2 and "Traceback" not in err and "--limit" in err
    code, _, err = orch(capsys, "agent", "start")
    assert code == 2 and "--work-queue" in err
