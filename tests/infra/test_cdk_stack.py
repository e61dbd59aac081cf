"""The CDK stack in infra/cdk: what it creates, what it allows, and that cdk-nag and cfn-lint accept it.

Two variants are synthesized once each per module (synth with cdk-nag takes ~20 s): the default (Aurora Serverless
v2 with auto-pause, no proxy, no NAT, Function URL) and one that flips every switch (RDS instance, RDS Proxy with IAM
auth, one NAT gateway, HTTP API, container insights, no deletion protection, two work queues, another prefix).
The Lambda code is a small folder made by the test and named as a placeholder: nothing here runs the handlers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.unit

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
pytest.importorskip("aws_cdk", reason="aws-cdk-lib is not installed (pip install -e '.[infra]')")
pytest.importorskip("cdk_nag", reason="cdk-nag is not installed (pip install -e '.[infra]')")

from aws_cdk import assertions  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_PY = REPO_ROOT / "infra" / "cdk" / "app.py"

ENV_CONTRACT = {
    "ORCH_DATABASE_SECRET_ARN",
    "ORCH_DATABASE_HOST",
    "ORCH_DATABASE_NAME",
    "ORCH_DATABASE_POOL",
    "ORCH_DATABASE_IAM_AUTH",
    "ORCH_RUN_QUEUE",
    "ORCH_SQS_QUEUE_PREFIX",
    "ORCH_SCHEDULE_BACKEND",
    "ORCH_SCHEDULER_GROUP_NAME",
    "ORCH_SCHEDULER_ROLE_ARN",
    "ORCH_SCHEDULER_TARGET_ARN",
    "ORCH_STORAGE_URL",
    "ORCH_RESULTS_STORAGE_URL",
    "ORCH_ECS_CLUSTER",
    "ORCH_ECS_SUBNETS",
    "ORCH_ECS_SECURITY_GROUPS",
    "ORCH_ECS_ASSIGN_PUBLIC_IP",
    "ORCH_ECS_TASK_ROLE_ARN",
    "ORCH_ECS_EXECUTION_ROLE_ARN",
    "ORCH_ECS_LOG_GROUP",
    "ORCH_AUTH",
    "ORCH_BOOTSTRAP_KEY_SECRET_ARN",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
}
HANDLERS = {
    "api": "orch.control_plane.lambda_handlers.api_handler",
    "schedule": "orch.control_plane.lambda_handlers.schedule_handler",
    "services": "orch.control_plane.lambda_handlers.services_handler",
    "ecs_events": "orch.control_plane.lambda_handlers.ecs_events_handler",
}
# Actions that may stand on Resource "*" because IAM offers no resource-level permission for them.
STAR_RESOURCE_ACTIONS = {
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "ecr:GetAuthorizationToken",
    "scheduler:ListSchedules",
    "ecs:RegisterTaskDefinition",
    "ecs:TagResource",
}


def _load_app_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("orch_cdk_app", APP_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while app.py runs
    spec.loader.exec_module(module)
    return module


APP = _load_app_module()
from orch_cdk.config import ConfigError, StackConfig  # noqa: E402
from orch_cdk.lambda_asset import AssetError, LambdaAsset, resolve_lambda_asset  # noqa: E402
from orch_cdk.stack import OUTPUT_NAMES  # noqa: E402


@dataclass
class Synth:
    """One synthesized variant: the stack, its template as JSON, and its cdk-nag errors."""

    stack: Any
    template: assertions.Template
    json: dict[str, Any]
    nag_errors: list[str]
    template_path: Path

    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.json["Resources"].items() if v["Type"] == type_}

    def logical_id(self, construct: Any) -> str:
        return str(self.stack.get_logical_id(construct.node.default_child))

    def function(self, name: str) -> dict[str, Any]:
        functions = self.stack.functions
        construct = {
            "api": functions.api,
            "schedule": functions.schedule,
            "services": functions.services,
            "ecs_events": functions.ecs_events,
        }[name]
        return dict(self.json["Resources"][self.logical_id(construct)])

    def role_statements(self, name: str) -> list[dict[str, Any]]:
        """Every statement of the inline policies attached to a function's role."""
        role_id = self.function(name)["Properties"]["Role"]["Fn::GetAtt"][0]
        statements: list[dict[str, Any]] = []
        for policy in self.resources("AWS::IAM::Policy").values():
            if {"Ref": role_id} in policy["Properties"]["Roles"]:
                statements += policy["Properties"]["PolicyDocument"]["Statement"]
        return statements


def _synth(tmp: Path, context: dict[str, Any]) -> Synth:
    code = tmp / "orch-lambda-TEST-PLACEHOLDER"
    code.mkdir()
    (code / "README.txt").write_text("Placeholder Lambda asset for synthesis tests. It holds no orch code.\n")
    built = APP.build_app(context, str(tmp / "cdk.out"), asset=LambdaAsset(code, built=True))
    template = assertions.Template.from_stack(built.stack)  # synthesizes the app, running the nag aspect
    errors = assertions.Annotations.from_stack(built.stack).find_error(
        "*", assertions.Match.string_like_regexp("AwsSolutions-.*")
    )
    template_path = tmp / "template.json"
    template_path.write_text(json.dumps(template.to_json()))
    return Synth(
        built.stack,
        template,
        template.to_json(),
        [f"{e.id}: {str(e.entry.data)[:160]}" for e in errors],
        template_path,
    )


VARIANT_CONTEXT = {
    "prefix": "dev",
    "database": "instance",
    "rds_proxy": "true",
    "db_iam_auth": "true",
    "nat_gateways": "1",
    "api_endpoint": "http_api",
    "container_insights": "true",
    "deletion_protection": "false",
    "work_queues": '["default", "gpu"]',
    "log_retention_days": "14",
}


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synth(tmp_path_factory.mktemp("default"), {})


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synth(tmp_path_factory.mktemp("variant"), VARIANT_CONTEXT)


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def _resources(statement: dict[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def _flat(value: Any) -> str:
    """A CloudFormation value (string, Ref, Fn::Join ...) as one string, for pattern checks."""
    return json.dumps(value, sort_keys=True)


# ---------------------------------------------------------------- default variant: resources and properties


def test_buckets_are_encrypted_private_tls_only_and_without_acls(default: Synth) -> None:
    buckets = default.resources("AWS::S3::Bucket")
    assert len(buckets) == 2
    for bucket in buckets.values():
        props = bucket["Properties"]
        rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    policies = default.resources("AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


def test_only_the_code_bucket_is_versioned(default: Synth) -> None:
    storage = default.stack.storage
    code = default.json["Resources"][default.logical_id(storage.code_bucket)]["Properties"]
    results = default.json["Resources"][default.logical_id(storage.results_bucket)]["Properties"]
    assert code["VersioningConfiguration"] == {"Status": "Enabled"}
    assert "VersioningConfiguration" not in results


def test_work_queues_and_ecs_events_queue_have_dlqs_sse_and_tls(default: Synth) -> None:
    queues = default.resources("AWS::SQS::Queue")
    by_name = {q["Properties"]["QueueName"]: (k, q["Properties"]) for k, q in queues.items()}
    assert set(by_name) == {"orch-default", "orch-default-dlq", "orch_ecs-events", "orch_ecs-events-dlq"}
    # The attributes the SQS run-queue adapter uses when it creates a work queue itself.
    assert by_name["orch-default"][1]["VisibilityTimeout"] == 60
    assert by_name["orch-default"][1]["ReceiveMessageWaitTimeSeconds"] == 20
    assert by_name["orch-default-dlq"][1]["MessageRetentionPeriod"] == 14 * 86_400
    for name, (_, props) in by_name.items():
        assert props["SqsManagedSseEnabled"] is True
        if not name.endswith("-dlq"):
            dlq_id = by_name[f"{name}-dlq"][0]
            assert props["RedrivePolicy"] == {
                "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
                "maxReceiveCount": 5,
            }
    queue_policies = default.resources("AWS::SQS::QueuePolicy")
    covered = set()
    for policy in queue_policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        if any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
        ):
            covered |= {q["Ref"] for q in policy["Properties"]["Queues"]}
    assert covered == set(queues)


def test_no_nat_gateway_by_default_and_endpoints_for_the_isolated_lambdas(default: Synth) -> None:
    default.template.resource_count_is("AWS::EC2::NatGateway", 0)
    routes = default.resources("AWS::EC2::Route")
    # Only the two public route tables have a default route, and it goes to the internet gateway.
    assert len(routes) == 2
    assert all("GatewayId" in r["Properties"] for r in routes.values())
    endpoints = default.resources("AWS::EC2::VPCEndpoint")
    services = sorted(_flat(e["Properties"]["ServiceName"]) for e in endpoints.values())
    assert len(services) == 5
    for service in ("secretsmanager", "sqs", "scheduler", "ecs", "s3"):
        assert any(f".{service}" in s for s in services), service
    interface = [e for e in endpoints.values() if e["Properties"].get("VpcEndpointType") == "Interface"]
    assert len(interface) == 4
    assert all(len(e["Properties"]["SubnetIds"]) == 1 for e in interface)  # endpoint_azs=1


def test_aurora_serverless_v2_pauses_is_encrypted_and_pinned(default: Synth) -> None:
    clusters = default.resources("AWS::RDS::DBCluster")
    assert len(clusters) == 1
    props = next(iter(clusters.values()))["Properties"]
    assert props["Engine"] == "aurora-postgresql"
    assert re.fullmatch(r"\d+\.\d+", props["EngineVersion"])
    assert props["ServerlessV2ScalingConfiguration"] == {
        "MinCapacity": 0,
        "MaxCapacity": 4,
        "SecondsUntilAutoPause": 600,
    }
    assert props["StorageEncrypted"] is True
    assert props["DeletionProtection"] is True
    assert props["MasterUsername"] == "orch"
    assert "secretsmanager" in _flat(props["MasterUserPassword"])
    default.template.has_resource_properties(
        "AWS::RDS::DBInstance", {"DBInstanceClass": "db.serverless", "PubliclyAccessible": False}
    )
    default.template.has_resource_properties(
        "AWS::RDS::DBClusterParameterGroup", {"Parameters": {"rds.force_ssl": "1"}}
    )
    default.template.resource_count_is("AWS::RDS::DBProxy", 0)
    default.template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "Name": "orch/database",
            "GenerateSecretString": assertions.Match.object_like({"GenerateStringKey": "password"}),
        },
    )


def test_four_lambdas_python312_arm64_in_the_isolated_subnets(default: Synth) -> None:
    private_subnets = {
        default.stack.get_logical_id(s.node.default_child) for s in default.stack.network.vpc.isolated_subnets
    }
    for name, handler in HANDLERS.items():
        props = default.function(name)["Properties"]
        assert props["Handler"] == handler
        assert props["Runtime"] == "python3.12"
        assert props["Architectures"] == ["arm64"]
        assert {s["Ref"] for s in props["VpcConfig"]["SubnetIds"]} == private_subnets
        assert "ManagedPolicyArns" not in default.json["Resources"][props["Role"]["Fn::GetAtt"][0]]["Properties"]


def test_every_lambda_gets_the_settings_contract(default: Synth) -> None:
    resources = default.json["Resources"]
    cluster_id = next(iter(default.resources("AWS::RDS::DBCluster")))
    for name in HANDLERS:
        env = default.function(name)["Properties"]["Environment"]["Variables"]
        assert set(env) == ENV_CONTRACT
        assert env["ORCH_DATABASE_POOL"] == "null"
        assert env["ORCH_RUN_QUEUE"] == "sqs"
        assert env["ORCH_SQS_QUEUE_PREFIX"] == "orch-"
        assert env["ORCH_SCHEDULE_BACKEND"] == "eventbridge"
        assert env["ORCH_SCHEDULER_GROUP_NAME"] == "orch-schedules"
        assert env["ORCH_AUTH"] == "on"
        assert env["ORCH_DATABASE_NAME"] == "orch"
        assert env["ORCH_DATABASE_IAM_AUTH"] == "off"
        assert env["POWERTOOLS_SERVICE_NAME"] == env["POWERTOOLS_METRICS_NAMESPACE"] == "orch"
        # Without a proxy the host is the cluster's writer endpoint.
        assert env["ORCH_DATABASE_HOST"] == {"Fn::GetAtt": [cluster_id, "Endpoint.Address"]}
        assert _flat(env["ORCH_SCHEDULER_TARGET_ARN"]).endswith('":function:orch-schedule"]]}')
        assert env["ORCH_STORAGE_URL"]["Fn::Join"][1][0] == "s3://"
        assert env["ORCH_STORAGE_URL"]["Fn::Join"][1][2] == "/bundles"
        assert env["ORCH_RESULTS_STORAGE_URL"]["Fn::Join"][1][2] == "/results"
        subnets = env["ORCH_ECS_SUBNETS"]["Fn::Join"][1]
        assert [resources[s["Ref"]]["Properties"]["MapPublicIpOnLaunch"] for s in subnets[::2]] == [True, True]
    assert default.function("schedule")["Properties"]["FunctionName"] == "orch-schedule"


def test_api_is_behind_a_function_url_without_iam_auth(default: Synth) -> None:
    api_id = default.logical_id(default.stack.functions.api)
    default.template.has_resource_properties(
        "AWS::Lambda::Url", {"AuthType": "NONE", "TargetFunctionArn": {"Fn::GetAtt": [api_id, "Arn"]}}
    )
    default.template.resource_count_is("AWS::ApiGatewayV2::Api", 0)
    url_id = next(iter(default.resources("AWS::Lambda::Url")))
    assert default.json["Outputs"]["ApiUrl"]["Value"] == {"Fn::GetAtt": [url_id, "FunctionUrl"]}


def test_scheduler_group_and_an_invoke_role_for_the_schedule_lambda_only(default: Synth) -> None:
    default.template.has_resource_properties("AWS::Scheduler::ScheduleGroup", {"Name": "orch-schedules"})
    role_id = default.stack.get_logical_id(default.stack.functions.scheduler_role.node.default_child)
    trust = default.json["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "scheduler.amazonaws.com"}]
    assert "aws:SourceAccount" in trust[0]["Condition"]["StringEquals"]
    statements = [
        s
        for p in default.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert len(statements) == 1
    assert statements[0]["Action"] == "lambda:InvokeFunction"
    assert _flat(statements[0]["Resource"]).endswith('":function:orch-schedule"]]}')


def test_services_tick_and_ecs_events_pipeline(default: Synth) -> None:
    rules = default.resources("AWS::Events::Rule")
    services_id = default.logical_id(default.stack.functions.services)
    ecs_events_id = default.logical_id(default.stack.functions.ecs_events)
    tick = [r for r in rules.values() if r["Properties"].get("ScheduleExpression")]
    assert len(tick) == 1
    assert tick[0]["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert tick[0]["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [services_id, "Arn"]}
    ecs_rules = [r for r in rules.values() if r["Properties"].get("EventPattern")]
    assert len(ecs_rules) == 1
    pattern = ecs_rules[0]["Properties"]["EventPattern"]
    cluster_id = default.logical_id(default.stack.runtime.cluster)
    assert pattern == {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {"clusterArn": [{"Fn::GetAtt": [cluster_id, "Arn"]}]},
    }
    target = ecs_rules[0]["Properties"]["Targets"][0]
    queue_id = default.logical_id(default.stack.functions.ecs_events_queue)
    dlq_id = default.logical_id(default.stack.functions.ecs_events_dlq)
    assert target["Arn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq_id, "Arn"]}}
    default.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [queue_id, "Arn"]},
            "FunctionName": {"Ref": ecs_events_id},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )


def test_ecs_cluster_roles_and_flow_run_logs(default: Synth) -> None:
    default.template.has_resource_properties(
        "AWS::ECS::Cluster",
        {"ClusterName": "orch", "ClusterSettings": [{"Name": "containerInsights", "Value": "disabled"}]},
    )
    default.template.has_resource_properties(
        "AWS::Logs::LogGroup", {"LogGroupName": "/orch/orch/flow-runs", "RetentionInDays": 30}
    )
    for group in default.resources("AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] == 30
    for role in (default.stack.runtime.task_role, default.stack.runtime.execution_role):
        props = default.json["Resources"][default.stack.get_logical_id(role.node.default_child)]["Properties"]
        assert props["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}


def test_bootstrap_admin_key_is_a_generated_secret(default: Synth) -> None:
    default.template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "Name": "orch/bootstrap-admin-key",
            "GenerateSecretString": {"ExcludePunctuation": True, "IncludeSpace": False, "PasswordLength": 48},
        },
    )


def test_only_data_survives_a_stack_delete(default: Synth) -> None:
    """Snapshot the database, keep the buckets; everything with a fixed name goes, so a redeploy can recreate it."""
    kept = {
        k: r["DeletionPolicy"]
        for k, r in default.json["Resources"].items()
        if r.get("DeletionPolicy", "Delete") != "Delete"
    }
    storage = default.stack.storage
    cluster_id = next(iter(default.resources("AWS::RDS::DBCluster")))
    assert kept == {
        cluster_id: "Snapshot",
        default.logical_id(storage.code_bucket): "Retain",
        default.logical_id(storage.results_bucket): "Retain",
    }


def test_outputs_are_the_published_contract(default: Synth) -> None:
    assert tuple(default.json["Outputs"]) == OUTPUT_NAMES
    for name in ("ApiUrl", "CodeBucket", "ResultsBucket", "ClusterArn", "ClusterName", "Subnets", "SecurityGroup"):
        assert name in OUTPUT_NAMES
    queue_id = default.logical_id(default.stack.storage.work_queues[0].queue)
    # A JSON object {"default": "<queue url>"} once CloudFormation resolves the Ref.
    assert default.json["Outputs"]["WorkQueueUrls"]["Value"] == {
        "Fn::Join": ["", ['{"default":"', {"Ref": queue_id}, '"}']]
    }


# ---------------------------------------------------------------- IAM least privilege


def test_no_wildcard_actions_and_no_managed_policies(default: Synth, variant: Synth) -> None:
    for synth in (default, variant):
        for policy in synth.resources("AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                for action in _actions(statement):
                    assert "*" not in action, action
                if "*" in _resources(statement):
                    assert set(_actions(statement)) <= STAR_RESOURCE_ACTIONS, statement
        for role in synth.resources("AWS::IAM::Role").values():
            assert "ManagedPolicyArns" not in role["Properties"]


def test_lambda_permissions_are_scoped(default: Synth) -> None:
    secret_refs = {_flat(default.stack.resolve(default.stack.database.secret.secret_arn))}
    bootstrap_ref = _flat(default.stack.resolve(default.stack.storage.bootstrap_key.secret_arn))
    bucket_ids = {
        default.logical_id(default.stack.storage.code_bucket),
        default.logical_id(default.stack.storage.results_bucket),
    }
    cluster_id = default.logical_id(default.stack.runtime.cluster)
    for name in HANDLERS:
        for statement in default.role_statements(name):
            actions = _actions(statement)
            resources = [_flat(r) for r in _resources(statement)]
            service = {a.split(":")[0] for a in actions}
            assert len(service) == 1, statement
            if service == {"sqs"} and "ReceiveMessage" in " ".join(actions) and name == "ecs_events":
                # The event-source grant on the ECS-events queue only.
                queue_id = default.logical_id(default.stack.functions.ecs_events_queue)
                assert resources == [_flat({"Fn::GetAtt": [queue_id, "Arn"]})]
            elif service == {"sqs"}:
                assert all(r.endswith(':orch-*"]]}') for r in resources), resources
            elif actions == ["scheduler:GetScheduleGroup"]:
                group_id = default.logical_id(default.stack.functions.schedule_group)
                assert resources == [_flat({"Fn::GetAtt": [group_id, "Arn"]})]
            elif service == {"scheduler"} and actions != ["scheduler:ListSchedules"]:
                assert all(r.endswith(':schedule/orch-schedules/*"]]}') for r in resources), resources
            elif service == {"secretsmanager"}:
                assert actions == ["secretsmanager:GetSecretValue"]
                assert set(resources) <= secret_refs | {bootstrap_ref}
            elif service == {"s3"}:
                assert all(any(b in r for b in bucket_ids) for r in resources), resources
            elif service == {"iam"}:
                assert actions == ["iam:PassRole"]
                assert statement["Condition"]["StringEquals"]["iam:PassedToService"] in {
                    "scheduler.amazonaws.com",
                    "ecs-tasks.amazonaws.com",
                }
            elif actions in (["ecs:RunTask"], ["ecs:StopTask", "ecs:DescribeTasks"]):
                assert statement["Condition"] == {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [cluster_id, "Arn"]}}}
            elif service == {"logs"}:
                assert all(r.endswith(':log-stream:*"]]}') for r in resources)
            else:
                assert set(actions) <= STAR_RESOURCE_ACTIONS, statement
            assert service != {"rds-db"}  # IAM auth is off by default


def test_permission_matrix_per_function(default: Synth) -> None:
    def actions_of(name: str) -> set[str]:
        return {a for s in default.role_statements(name) for a in _actions(s)}

    api, schedule, services, ecs_events = (actions_of(n) for n in HANDLERS)
    assert "scheduler:CreateSchedule" in api and "scheduler:CreateSchedule" in services
    assert "scheduler:CreateSchedule" not in schedule | ecs_events
    assert "sqs:CreateQueue" in api and "sqs:DeleteQueue" in services
    assert {"sqs:CreateQueue", "sqs:DeleteQueue"}.isdisjoint(schedule | ecs_events)
    assert "sqs:SendMessage" in schedule
    assert "ecs:RunTask" in services and "ecs:RunTask" not in schedule | ecs_events
    assert not any(a.startswith("ecs:") for a in schedule | ecs_events)
    assert not any(a.startswith("s3:") for a in schedule | ecs_events)
    bootstrap = _flat(default.stack.resolve(default.stack.storage.bootstrap_key.secret_arn))
    readers = {
        name
        for name in HANDLERS
        for s in default.role_statements(name)
        if s["Action"] == "secretsmanager:GetSecretValue" and bootstrap in [_flat(r) for r in _resources(s)]
    }
    # Every handler installs the bootstrap key on its first database use (control_plane/lambda_handlers.py).
    assert readers == set(HANDLERS)


# ---------------------------------------------------------------- checks: cdk-nag and cfn-lint


def test_cdk_nag_has_no_unsuppressed_errors(default: Synth, variant: Synth) -> None:
    assert default.nag_errors == []
    assert variant.nag_errors == []


def _cfn_lint() -> str:
    # The project's own cfn-lint first: another one on PATH may carry older resource schemas.
    beside_python = Path(sys.executable).with_name("cfn-lint")
    found = str(beside_python) if beside_python.exists() else shutil.which("cfn-lint")
    if found is None:
        pytest.skip("cfn-lint is not installed (pip install -e '.[infra]')")
    return found


@pytest.mark.parametrize("which", ["default", "variant"])
def test_cfn_lint_accepts_the_template(which: str, request: pytest.FixtureRequest) -> None:
    cfn_lint = _cfn_lint()
    synth: Synth = request.getfixturevalue(which)
    result = subprocess.run(
        [cfn_lint, "--ignore-checks", "W3005", "--", str(synth.template_path)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- the other variant


def test_variant_instance_behind_rds_proxy_with_iam_auth(variant: Synth) -> None:
    assert variant.stack.stack_name == "OrchControlPlane-dev"
    variant.template.resource_count_is("AWS::RDS::DBCluster", 0)
    instance = next(iter(variant.resources("AWS::RDS::DBInstance").values()))["Properties"]
    assert instance["DBInstanceClass"] == "db.t4g.micro"
    assert instance["Engine"] == "postgres"
    assert re.fullmatch(r"\d+\.\d+", instance["EngineVersion"])
    assert instance["StorageEncrypted"] is True
    assert instance["DeletionProtection"] is False
    assert instance["PubliclyAccessible"] is False
    proxies = variant.resources("AWS::RDS::DBProxy")
    assert len(proxies) == 1
    proxy_id, proxy = next(iter(proxies.items()))
    assert proxy["Properties"]["RequireTLS"] is True
    assert proxy["Properties"]["Auth"][0]["IAMAuth"] == "REQUIRED"
    for name in HANDLERS:
        env = variant.function(name)["Properties"]["Environment"]["Variables"]
        assert env["ORCH_DATABASE_HOST"] == {"Fn::GetAtt": [proxy_id, "Endpoint"]}
        assert env["ORCH_DATABASE_IAM_AUTH"] == "on"
        assert env["ORCH_SQS_QUEUE_PREFIX"] == "dev-"
        assert env["ORCH_ECS_ASSIGN_PUBLIC_IP"] == "off"
        connect = [s for s in variant.role_statements(name) if s["Action"] == "rds-db:connect"]
        assert len(connect) == 1
        assert _flat(connect[0]["Resource"]).endswith('/orch"]]}')
        assert proxy_id in _flat(connect[0]["Resource"])


def test_variant_network_api_and_queues(variant: Synth) -> None:
    variant.template.resource_count_is("AWS::EC2::NatGateway", 1)
    interface = [
        e
        for e in variant.resources("AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Interface"
    ]
    assert interface == []
    variant.template.resource_count_is("AWS::Lambda::Url", 0)
    variant.template.resource_count_is("AWS::ApiGatewayV2::Api", 1)
    api_id = next(iter(variant.resources("AWS::ApiGatewayV2::Api")))
    assert api_id in _flat(variant.json["Outputs"]["ApiUrl"]["Value"])
    names = {q["Properties"]["QueueName"] for q in variant.resources("AWS::SQS::Queue").values()}
    assert names == {"dev-default", "dev-default-dlq", "dev-gpu", "dev-gpu-dlq", "dev_ecs-events", "dev_ecs-events-dlq"}
    variant.template.has_resource_properties(
        "AWS::ECS::Cluster", {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]}
    )
    for group in variant.resources("AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] == 14


# ---------------------------------------------------------------- settings and the Lambda package (no synth)


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"database": "postgres"}, "database"),
        ({"rds_proxy": "maybe"}, "rds_proxy"),
        ({"db_iam_auth": "true"}, "needs rds_proxy=true"),
        ({"vpc_endpoints": "false"}, "needs nat_gateways>=1"),
        ({"work_queues": '["Bad Name"]'}, "work_queues"),
        ({"work_queues": "[]"}, "non-empty"),
        ({"aurora_min_acu": "3", "aurora_max_acu": "2"}, "must not exceed"),
        ({"aurora_min_acu": "0.3"}, "steps of 0.5"),
        ({"log_retention_days": "10"}, "log_retention_days"),
        ({"prefix": "Orch"}, "prefix"),
        ({"auto_pause_minutes": "2"}, "between 5 and 1440"),
    ],
)
def test_bad_context_is_refused_with_the_key_named(context: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        StackConfig.from_context(context.get)


def test_context_values_parse_from_strings_and_json() -> None:
    config = StackConfig.from_context(
        {"work_queues": "a,b", "rds_proxy": "yes", "aurora_max_acu": "8", "nat_gateways": 1}.get
    )
    assert config.work_queues == ("a", "b")
    assert config.rds_proxy is True
    assert config.min_acu == 0.5  # with a proxy the writer cannot pause
    assert config.use_vpc_endpoints is False  # a NAT gateway makes the endpoints optional
    assert StackConfig.from_context({}.get).min_acu == 0


@pytest.fixture
def repo_root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "dist").mkdir(parents=True)
    return root


def test_lambda_asset_must_exist_and_hold_the_handlers(tmp_path: Path, repo_root: Path) -> None:
    with pytest.raises(AssetError, match="does not exist"):
        resolve_lambda_asset(str(tmp_path / "missing.zip"), repo_root)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("something.py", "")
    with pytest.raises(AssetError, match="no orch/control_plane/lambda_handlers"):
        resolve_lambda_asset(str(empty), repo_root)
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(AssetError, match="neither a folder nor a zip"):
        resolve_lambda_asset(str(text), repo_root)


def test_lambda_asset_accepts_a_built_zip_or_folder_and_defaults_to_dist(tmp_path: Path, repo_root: Path) -> None:
    folder = tmp_path / "lambda"
    (folder / "orch" / "control_plane").mkdir(parents=True)
    (folder / "orch" / "control_plane" / "lambda_handlers.py").write_text("")
    assert resolve_lambda_asset(str(folder), repo_root) == LambdaAsset(folder.resolve(), built=True)
    default_zip = repo_root / "dist" / "orch-lambda.zip"
    with zipfile.ZipFile(default_zip, "w") as archive:
        # A sourceless package (compileall -b) keeps the module importable as lambda_handlers.pyc.
        archive.writestr("orch/control_plane/lambda_handlers.pyc", b"")
    assert resolve_lambda_asset(None, repo_root) == LambdaAsset(default_zip, built=True)


def test_lambda_asset_with_only_a_pycache_copy_is_refused(tmp_path: Path, repo_root: Path) -> None:
    """Python ignores __pycache__ when the source is missing, so such a package could not import the handlers."""
    package = tmp_path / "cache-only.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("orch/control_plane/__pycache__/lambda_handlers.cpython-312.pyc", b"")
    with pytest.raises(AssetError, match="no orch/control_plane/lambda_handlers"):
        resolve_lambda_asset(str(package), repo_root)


def test_without_a_package_the_asset_is_a_labelled_placeholder(repo_root: Path) -> None:
    asset = resolve_lambda_asset(None, repo_root)
    assert asset.built is False
    assert [p.name for p in asset.path.iterdir()] == ["NOT_BUILT.txt"]
    assert "orch build lambda" in (asset.path / "NOT_BUILT.txt").read_text()


# ---------------------------------------------------------------- app.py as a program


def _run_app(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDK_")}
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    return subprocess.run(
        [sys.executable, str(APP_PY), "-o", str(tmp_path / "out"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=240,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-c", "database=postgres"), "error: context database='postgres'"),
        (("-c", "lambda_asset=/nonexistent/orch-lambda.zip"), "error: lambda_asset /nonexistent/orch-lambda.zip"),
        (("-c", "novalue"), "error: -c 'novalue'"),
    ],
)
def test_app_refuses_bad_input_with_one_line_and_exit_2(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    result = _run_app(*args, tmp_path=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_app_synthesizes_offline_without_a_package_and_blocks_deploy(tmp_path: Path) -> None:
    if (REPO_ROOT / "dist" / "orch-lambda.zip").exists():
        pytest.skip("dist/orch-lambda.zip exists, so app.py uses it instead of the placeholder")
    result = _run_app("-c", "nag=false", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "WARNING: no Lambda package from `orch build lambda`" in result.stderr
    out = tmp_path / "out"
    template = json.loads((out / "OrchControlPlane.template.json").read_text())
    assert len([r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]) == 4
    metadata = json.loads((out / "OrchControlPlane.metadata.json").read_text())
    errors = [e["data"] for e in metadata["/OrchControlPlane"] if e["type"] == "aws:cdk:error"]
    assert len(errors) == 1 and "run `orch build lambda` before `cdk deploy`" in errors[0]
