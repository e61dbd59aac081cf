"""``orch stack outputs``: what orch needs from a deployed AWS stack (CDK/CloudFormation or Terraform).

Both stacks publish the same facts under their own naming (CloudFormation ``ApiUrl``, Terraform ``api_url``); this
command reads either and shows them as the ``ORCH_*`` settings the CLI, ``orch deploy --infra ecs`` and ECS agents
use. ``--save`` writes them into the active profile, so that afterwards ``orch deploy`` uploads bundles to the
stack's S3 bucket and agents launch Fargate tasks in the stack's cluster and subnets.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import typer

from orch.cli._output import JSON_OPTION, print_json, print_table

app = typer.Typer(help="Read a deployed orch stack's outputs.", no_args_is_help=True)

# CloudFormation output (CDK stack) → ORCH_* setting.
CFN_KEYS = {
    "ApiUrl": "ORCH_API_URL",
    "StorageUrl": "ORCH_STORAGE_URL",
    "ResultsStorageUrl": "ORCH_DEFAULT_RESULT_STORAGE",
    "ClusterArn": "ORCH_ECS_CLUSTER",
    "Subnets": "ORCH_ECS_SUBNETS",
    "SecurityGroup": "ORCH_ECS_SECURITY_GROUPS",
    "AssignPublicIp": "ORCH_ECS_ASSIGN_PUBLIC_IP",
    "TaskRoleArn": "ORCH_ECS_TASK_ROLE_ARN",
    "ExecutionRoleArn": "ORCH_ECS_EXECUTION_ROLE_ARN",
    "LogGroup": "ORCH_ECS_LOG_GROUP",
    "SqsQueuePrefix": "ORCH_SQS_QUEUE_PREFIX",
    "BootstrapKeySecretArn": "ORCH_BOOTSTRAP_KEY_SECRET_ARN",
}
# Terraform output → ORCH_* setting (code_bucket becomes the bundle storage URL).
TF_KEYS = {
    "api_url": "ORCH_API_URL",
    "cluster_arn": "ORCH_ECS_CLUSTER",
    "subnets": "ORCH_ECS_SUBNETS",
    "security_group": "ORCH_ECS_SECURITY_GROUPS",
    "ecs_task_role_arn": "ORCH_ECS_TASK_ROLE_ARN",
    "ecs_execution_role_arn": "ORCH_ECS_EXECUTION_ROLE_ARN",
    "ecs_log_group": "ORCH_ECS_LOG_GROUP",
    "bootstrap_key_secret_arn": "ORCH_BOOTSTRAP_KEY_SECRET_ARN",
    "assign_public_ip": "ORCH_ECS_ASSIGN_PUBLIC_IP",
    "sqs_queue_prefix": "ORCH_SQS_QUEUE_PREFIX",
    "flow_run_api_key_secret_arn": "ORCH_ECS_API_KEY_SECRET_ARN",
}


def _normalised(settings: dict[str, str]) -> dict[str, str]:
    """Values in the form orch's settings parse (ECS's ENABLED/DISABLED and Terraform's true/false → a bool)."""
    flag = settings.get("ORCH_ECS_ASSIGN_PUBLIC_IP")
    if flag is not None:
        settings["ORCH_ECS_ASSIGN_PUBLIC_IP"] = (
            "true" if flag.strip().lower() in ("enabled", "true", "1", "on") else "false"
        )
    return settings


def from_cloudformation(outputs: list[dict[str, str]]) -> dict[str, str]:
    values = {o["OutputKey"]: o["OutputValue"] for o in outputs}
    return _normalised({setting: values[key] for key, setting in CFN_KEYS.items() if values.get(key)})


def from_terraform(outputs: dict[str, Any]) -> dict[str, str]:
    def value(name: str) -> Any:
        item = outputs.get(name)
        return item.get("value") if isinstance(item, dict) else None

    settings = {}
    for key, setting in TF_KEYS.items():
        raw = value(key)
        if raw is None:
            continue
        settings[setting] = ",".join(raw) if isinstance(raw, list) else str(raw)
    if value("code_bucket"):
        settings["ORCH_STORAGE_URL"] = f"s3://{value('code_bucket')}/bundles"
    if value("results_bucket"):
        settings["ORCH_DEFAULT_RESULT_STORAGE"] = f"s3://{value('results_bucket')}/results"
    return _normalised(settings)


def read_cloudformation(stack: str) -> dict[str, str]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from orch.exceptions import ConfigurationError

    try:
        stacks = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except (BotoCoreError, ClientError) as exc:
        raise ConfigurationError(f"Cannot read CloudFormation stack {stack!r}: {exc}") from None
    outputs = [
        {"OutputKey": str(o.get("OutputKey", "")), "OutputValue": str(o.get("OutputValue", ""))}
        for o in stacks[0].get("Outputs", [])
    ]
    return from_cloudformation(outputs)


def read_terraform(directory: Path) -> dict[str, str]:
    from orch.exceptions import ConfigurationError

    try:
        done = subprocess.run(
            ["terraform", f"-chdir={directory}", "output", "-json"], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigurationError(f"Cannot run terraform: {exc}") from None
    if done.returncode != 0:
        errors = [line.strip("│╷╵ ") for line in done.stderr.splitlines() if line.strip("│╷╵ ")]
        raise ConfigurationError(f"`terraform output` failed in {directory}: {errors[-1] if errors else 'no output'}")
    return from_terraform(json.loads(done.stdout or "{}"))


@app.command("outputs")
def outputs(
    stack: str = typer.Option("OrchControlPlane", "--stack", help="CloudFormation stack name (the CDK stack)."),
    terraform_dir: Path = typer.Option(None, "--terraform-dir", help="Read `terraform output` here instead."),
    save: bool = typer.Option(False, "--save", help="Store the settings in the active profile."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the stack's outputs as orch settings (and optionally save them in the active profile)."""
    from orch.exceptions import ConfigurationError
    from orch.settings import ProfileFile, clear_settings_cache, home_from_env

    settings = read_terraform(terraform_dir) if terraform_dir else read_cloudformation(stack)
    if not settings:
        raise ConfigurationError("The stack has no orch outputs: is it an orch stack, and is it deployed?")
    if save:
        profiles = ProfileFile.load(home_from_env())
        profiles.profiles.setdefault(profiles.active, {}).update(settings)
        profiles.save()
        clear_settings_cache()
    if as_json:
        print_json(settings)
        return
    print_table("Stack outputs", ("setting", "value"), sorted(settings.items()))
    if save:
        typer.echo(f"Saved in profile {profiles.active!r} ({profiles.path}).")
