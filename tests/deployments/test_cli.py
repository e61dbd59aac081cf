"""``orch deploy`` and ``orch deployment`` against the embedded control plane in ORCH_HOME.

Deploying examples/hello registers hello/nightly with its schedule; ``orch deployment run`` creates a Scheduled
run (the agent that would execute it is not part of this feature); bad input is one line and exit code 2. The first
test runs real ``orch`` processes; the others call the same ``main()`` in-process (a process start costs seconds
on this machine), which goes through the same argument parsing, error handling and exit codes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, orch_env

pytestmark = pytest.mark.integration

EXAMPLE = REPO_ROOT / "examples" / "hello"


def orch(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orch.cli", *args],
        env=orch_env(home, COLUMNS="200"),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``orch ARGS`` in-process: the exit code and what it printed, like a finished process."""
    from orch.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    code = exit_info.value.code
    return subprocess.CompletedProcess(list(args), int(code or 0), captured.out, captured.err)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of examples/hello (the test must not leave files in the repository)."""
    dest = tmp_path / "hello"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_deploy_example_then_run_it_as_processes(orch_home: Path, project: Path) -> None:
    first = orch(orch_home, "deploy", "--dir", str(project))
    assert first.returncode == 0, first.stderr
    assert "uploaded" in first.stdout
    assert "deployment hello/nightly registered (1 schedule)" in first.stdout
    run = orch(orch_home, "deployment", "run", "hello/nightly", "--param", "who=x", "--json")
    assert run.returncode == 0, run.stderr
    flow_run = json.loads(run.stdout)
    assert flow_run["state"]["type"] == "SCHEDULED"
    assert flow_run["state"]["name"] == "Scheduled"
    assert flow_run["parameters"] == {"who": "x"}
    bad = orch(orch_home, "deployment", "run", "hello/nightly", "--param", "who=1")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "Error: Invalid parameters: who: Input should be a valid string"


def test_deploy_example_registers_schedule_and_bundle(
    capsys: pytest.CaptureFixture[str], orch_home: Path, project: Path
) -> None:
    first = cli(capsys, "deploy", "--dir", str(project))
    assert first.returncode == 0, first.stderr
    again = cli(capsys, "deploy", "--dir", str(project))
    assert again.returncode == 0, again.stderr
    assert "already stored" in again.stdout

    inspected = cli(capsys, "deployment", "inspect", "hello/nightly", "--json")
    assert inspected.returncode == 0, inspected.stderr
    deployment = json.loads(inspected.stdout)
    assert deployment["entrypoint"] == "flows.py:hello"
    assert deployment["work_queue_name"] == "default"
    assert deployment["max_lateness"] == 3600
    (schedule,) = deployment["schedules"]
    assert schedule["schedule"]["cron"] == "0 2 * * *"
    assert schedule["schedule"]["timezone"] == "Europe/Paris"
    assert schedule["active"] is True
    assert set(deployment["parameter_schema"]["properties"]) == {"who", "times", "excited"}
    bundle = deployment["code_bundle"]
    assert (orch_home / "storage" / bundle["key"]).is_file()

    listed = json.loads(cli(capsys, "deployment", "ls", "--json").stdout)
    assert [(d["flow_name"], d["name"]) for d in listed] == [("hello", "nightly")]
    assert cli(capsys, "deployment", "ls").returncode == 0
    assert cli(capsys, "deployment", "inspect", "hello/nightly").returncode == 0

    run = cli(capsys, "deployment", "run", "hello/nightly", "--param", "who=x", "--param", "times=3", "--json")
    assert run.returncode == 0, run.stderr
    flow_run = json.loads(run.stdout)
    assert flow_run["state"]["type"] == "SCHEDULED"
    assert flow_run["parameters"] == {"who": "x", "times": 3}
    assert flow_run["deployment_id"] == deployment["id"]
    assert flow_run["work_queue_name"] == "default"
    runs = json.loads(cli(capsys, "flow-run", "ls", "--json").stdout)
    assert [r["id"] for r in runs] == [flow_run["id"]]

    upcoming = json.loads(cli(capsys, "deployment", "upcoming", "hello/nightly", "--n", "3", "--json").stdout)
    assert len(upcoming) == 3
    assert cli(capsys, "deployment", "upcoming", "hello/nightly").returncode == 0


def test_run_refuses_bad_parameters_in_one_line(
    capsys: pytest.CaptureFixture[str], orch_home: Path, project: Path
) -> None:
    assert cli(capsys, "deploy", "--dir", str(project)).returncode == 0
    cases: list[tuple[list[str], str]] = [
        (["--param", "who=1"], "who: Input should be a valid string"),
        (["--param", "whom=x"], "Unknown parameter 'whom'"),
        (["--param", "times=many"], "times: Input should be a valid integer"),
        (["--params-json", "{not json"], "--params-json is not valid JSON"),
        (["--param", "novalue"], "must look like NAME=VALUE"),
    ]
    for args, message in cases:
        result = cli(capsys, "deployment", "run", "hello/nightly", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert message in lines[0]
    ok = cli(capsys, "deployment", "run", "hello/nightly", "--params-json", '{"who": "json", "excited": true}')
    assert ok.returncode == 0, ok.stderr
    assert cli(capsys, "deployment", "run", "hello/nope").returncode == 2
    assert cli(capsys, "deployment", "run", "no-slash").returncode == 2


def test_pause_resume_delete(capsys: pytest.CaptureFixture[str], orch_home: Path, project: Path) -> None:
    assert cli(capsys, "deploy", "--dir", str(project)).returncode == 0

    def paused() -> Any:
        return json.loads(cli(capsys, "deployment", "inspect", "hello/nightly", "--json").stdout)["paused"]

    assert cli(capsys, "deployment", "pause", "hello/nightly").returncode == 0
    assert paused() is True
    assert json.loads(cli(capsys, "deployment", "upcoming", "hello/nightly", "--json").stdout) == []
    assert cli(capsys, "deployment", "resume", "hello/nightly").returncode == 0
    assert paused() is False
    deleted = cli(capsys, "deployment", "delete", "hello/nightly", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    gone = cli(capsys, "deployment", "inspect", "hello/nightly")
    assert gone.returncode == 2
    assert "not found" in gone.stderr


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "deployments:\n  - name: a\n    entrypoint: flows.py:hello\n    schedules:\n"
            "      - cron: '0 * * * *'\n      - cron: '* *'\n",
            "orch.yaml: deployments[0].schedules[1].cron: cron must have 5 fields",
        ),
        (
            "deployments:\n  - name: a\n    entrypoint: flows.py:hello\n    infra: k8s\n",
            "orch.yaml: deployments[0].infra.type: Input should be 'process', 'docker' or 'ecs'",
        ),
        ("deployments:\n  - name: a\n    entrypoint: flows.py\n", "deployments[0].entrypoint: entrypoint must look"),
        ("deployments:\n  - name: a\n    entrypoint: flows.py:hello\n    colour: red\n", "deployments[0].colour"),
        ("deployments: [\n", "orch.yaml: invalid YAML"),
        ("deployments:\n  - name: a\n    entrypoint: flows.py:nope\n", "flows.py has no 'nope'"),
        ("deployments:\n  - name: a\n    entrypoint: missing.py:hello\n", "missing.py does not exist"),
    ],
)
def test_invalid_orch_yaml_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], orch_home: Path, project: Path, yaml_text: str, message: str
) -> None:
    (project / "orch.yaml").write_text(yaml_text)
    result = cli(capsys, "deploy", "--dir", str(project))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert message in lines[0]
    assert not (orch_home / "storage").exists()  # nothing uploaded when the project is invalid


def test_name_and_all_select_deployments(capsys: pytest.CaptureFixture[str], orch_home: Path, project: Path) -> None:
    text = (project / "orch.yaml").read_text()
    (project / "orch.yaml").write_text(
        text + "  - name: hourly\n    entrypoint: flows.py:hello\n    schedules:\n      - interval: 3600\n"
    )
    ambiguous = cli(capsys, "deploy", "--dir", str(project))
    assert ambiguous.returncode == 2
    assert "pass --name NAME or --all" in ambiguous.stderr
    one = cli(capsys, "deploy", "--dir", str(project), "--name", "hourly", "--infra", "docker")
    assert one.returncode == 0, one.stderr
    hourly = json.loads(cli(capsys, "deployment", "inspect", "hello/hourly", "--json").stdout)
    assert hourly["infra_type"] == "docker"
    assert cli(capsys, "deploy", "--dir", str(project), "--all").returncode == 0
    names = [d["name"] for d in json.loads(cli(capsys, "deployment", "ls", "--json").stdout)]
    assert names == ["hourly", "nightly"]
    assert cli(capsys, "deploy", "--dir", str(project), "--infra", "k8s", "--all").returncode == 2
