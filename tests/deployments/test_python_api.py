"""The Python side: ``deploy()`` / ``to_deployment()`` (Prefect's ``flow.deploy`` / ``flow.to_deployment``),
loading entrypoints without running the flow, and the parameter schema of a flow's signature."""

from __future__ import annotations

import datetime as dt
import enum
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from orch.exceptions import ConfigurationError

FLOWS = textwrap.dedent(
    """
    import enum
    from orch import flow
    from helpers import greeting  # a sibling module: the project folder is on sys.path while importing

    class Color(enum.Enum):
        red = "red"
        blue = "blue"

    @flow(name="greeter", retries=2, retry_delay_seconds=7)
    def greeter(who: str, color: Color = Color.red, times: int = 1, **extra) -> str:
        return greeting(who)

    not_a_flow = 3

    if __name__ == "__main__":
        raise SystemExit("the flow must not run on import")

    RAN_AT_IMPORT = True
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "flows.py").write_text(FLOWS)
    (root / "helpers.py").write_text("def greeting(who):\n    return f'hi {who}'\n")
    return root


@pytest.mark.unit
def test_load_flow_imports_without_running(project: Path) -> None:
    from orch.deployments import load_flow

    flow = load_flow("flows.py:greeter", project)
    assert flow.name == "greeter"
    with pytest.raises(ConfigurationError, match="not a flow"):
        load_flow("flows.py:not_a_flow", project)
    with pytest.raises(ConfigurationError, match="has no 'missing'"):
        load_flow("flows.py:missing", project)
    (project / "broken.py").write_text("import does_not_exist\n")
    with pytest.raises(ConfigurationError, match="ModuleNotFoundError"):
        load_flow("broken.py:x", project)
    (project / "pkg").mkdir()
    (project / "pkg" / "__init__.py").write_text("")
    (project / "pkg" / "mod.py").write_text("from orch import flow\n\n@flow\ndef inner():\n    pass\n")
    assert load_flow("pkg.mod:inner", project).name == "inner"


class Shape(enum.Enum):
    square = "square"


class Point(BaseModel):
    x: int
    y: int = 0


@pytest.mark.unit
def test_parameter_schema_of_a_signature() -> None:
    from orch.deployments import parameter_schema

    def fn(
        who: str,
        n: int = 1,
        when: dt.datetime | None = None,
        shape: Shape = Shape.square,
        p: Point | None = None,
        obj: object = object(),
    ) -> None:
        pass

    schema = parameter_schema(fn)
    assert schema["required"] == ["who"]
    assert schema["properties"]["who"]["type"] == "string"
    assert schema["properties"]["n"] == {"default": 1, "title": "n", "type": "integer"}
    assert schema["properties"]["shape"]["$ref"] == "#/$defs/Shape"
    assert "Point" in schema["$defs"]
    assert "additionalProperties" not in schema
    assert "default" not in schema["properties"]["obj"]  # not JSON: left out instead of failing


@pytest.mark.unit
def test_parameter_schema_with_unresolvable_hints() -> None:
    from orch.deployments import parameter_schema

    class Local:
        pass

    def fn(who: str, thing: Local) -> None:
        pass

    schema = parameter_schema(fn)
    assert schema["properties"]["who"]["type"] == "string"
    assert schema["properties"]["thing"] == {"title": "thing"}


@pytest.mark.integration
def test_deploy_from_python_registers_and_validates(client: Any, project: Path, orch_home: Path) -> None:
    from orch.deployments import deploy, load_flow, to_deployment
    from orch.deployments._client import create_flow_run_from_deployment

    flow = load_flow("flows.py:greeter", project)
    config = to_deployment(
        flow, "daily", project_dir=project, cron="0 9 * * *", timezone="Europe/Paris", parameters={"who": "a"}
    )
    assert config.entrypoint == "flows.py:greeter"
    assert config.schedules_for_api() == [
        {"schedule": {"cron": "0 9 * * *", "timezone": "Europe/Paris"}, "active": True}
    ]

    deployment = deploy(
        flow, "daily", project_dir=project, client=client, cron="0 9 * * *", parameters={"who": "a"}, work_queue="q"
    )
    assert deployment.full_name == "greeter/daily"
    assert deployment.retries == 2
    assert deployment.retry_delay == 7
    assert deployment.work_queue_name == "q"
    assert deployment.code_bundle is not None
    assert (orch_home / "storage" / deployment.code_bundle.key).is_file()
    assert deployment.parameter_schema["additionalProperties"] is True  # **extra
    run = create_flow_run_from_deployment(client, deployment.id, {"parameters": {"color": "blue", "other": 1}})
    assert run.parameters == {"who": "a", "color": "blue", "other": 1}
    from orch.exceptions import InvalidInput

    with pytest.raises(InvalidInput, match="color: Input should be 'red' or 'blue'"):
        create_flow_run_from_deployment(client, deployment.id, {"parameters": {"color": "green"}})


@pytest.mark.unit
def test_to_deployment_errors_are_one_line(project: Path) -> None:
    from orch.deployments import load_flow, to_deployment

    flow = load_flow("flows.py:greeter", project)
    with pytest.raises(ConfigurationError) as info:
        to_deployment(flow, "x", project_dir=project, cron="every day")
    assert str(info.value).startswith("deployment 'x': schedules[0].cron:")
    with pytest.raises(ConfigurationError, match="outside the project folder"):
        to_deployment(flow, "x", project_dir=project / "elsewhere")
