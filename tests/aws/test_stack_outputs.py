"""``orch stack outputs``: a deployed stack's outputs become orch settings (CloudFormation on moto's server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orch.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.aws]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


TEMPLATE = {
    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    "Outputs": {
        "ApiUrl": {"Value": "https://abc.lambda-url.us-east-1.on.aws"},
        "StorageUrl": {"Value": "s3://orch-code-123/bundles"},
        "ResultsStorageUrl": {"Value": "s3://orch-results-123/results"},
        "ClusterArn": {"Value": "arn:aws:ecs:us-east-1:123456789012:cluster/orch"},
        "Subnets": {"Value": "subnet-1,subnet-2"},
        "SecurityGroup": {"Value": "sg-1"},
        "TaskRoleArn": {"Value": "arn:aws:iam::123456789012:role/task"},
        "ExecutionRoleArn": {"Value": "arn:aws:iam::123456789012:role/exec"},
        "LogGroup": {"Value": "/orch/flow-runs"},
        "AssignPublicIp": {"Value": "ENABLED"},
        "Unrelated": {"Value": "ignored"},
    },
}


def test_cloudformation_outputs_saved_in_profile(moto: Any, aws_env: Any, orch_home: Path, capsys: Any) -> None:
    aws_env(moto)
    moto.client("cloudformation").create_stack(StackName="OrchControlPlane", TemplateBody=json.dumps(TEMPLATE))
    code, out, _ = run_cli(["stack", "outputs", "--json"], capsys)
    assert code == 0
    settings = json.loads(out)
    assert settings["ORCH_API_URL"] == "https://abc.lambda-url.us-east-1.on.aws"
    assert settings["ORCH_STORAGE_URL"] == "s3://orch-code-123/bundles"
    assert settings["ORCH_ECS_SUBNETS"] == "subnet-1,subnet-2"
    assert settings["ORCH_ECS_ASSIGN_PUBLIC_IP"] == "true"
    assert "Unrelated" not in json.dumps(settings)

    code, _, _ = run_cli(["stack", "outputs", "--save"], capsys)
    assert code == 0
    from orch.settings import ProfileFile, clear_settings_cache, get_settings

    saved = ProfileFile.load(orch_home).profiles["default"]
    assert saved["ORCH_ECS_CLUSTER"].endswith("cluster/orch")
    assert oct((orch_home / "profiles.toml").stat().st_mode & 0o777) == "0o600"
    clear_settings_cache()
    assert get_settings().api_url == "https://abc.lambda-url.us-east-1.on.aws"
    # An ECS agent started afterwards launches in the stack's cluster and subnets.
    from orch.agents.settings import AgentSettings

    agent = AgentSettings()
    assert agent.ecs_cluster == "arn:aws:ecs:us-east-1:123456789012:cluster/orch"
    assert agent.ecs_subnets == ["subnet-1", "subnet-2"]
    assert agent.ecs_assign_public_ip is True


def test_missing_stack_is_one_line_exit_2(moto: Any, aws_env: Any, capsys: Any) -> None:
    aws_env(moto)
    code, out, err = run_cli(["stack", "outputs", "--stack", "nope"], capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "nope" in err


def test_terraform_outputs_are_normalised() -> None:
    from orch.cli.stack import from_terraform

    outputs = {
        "api_url": {"value": "https://x.lambda-url.eu-west-1.on.aws/"},
        "code_bucket": {"value": "code-b"},
        "results_bucket": {"value": "res-b"},
        "subnets": {"value": ["subnet-a", "subnet-b"]},
        "cluster_arn": {"value": "arn:aws:ecs:eu-west-1:1:cluster/orch"},
        "assign_public_ip": {"value": False},
    }
    settings = from_terraform(outputs)
    assert settings == {
        "ORCH_API_URL": "https://x.lambda-url.eu-west-1.on.aws/",
        "ORCH_ECS_CLUSTER": "arn:aws:ecs:eu-west-1:1:cluster/orch",
        "ORCH_ECS_SUBNETS": "subnet-a,subnet-b",
        "ORCH_ECS_ASSIGN_PUBLIC_IP": "false",
        "ORCH_STORAGE_URL": "s3://code-b/bundles",
        "ORCH_DEFAULT_RESULT_STORAGE": "s3://res-b/results",
    }
