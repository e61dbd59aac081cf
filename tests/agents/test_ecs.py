"""The ECS (Fargate) launcher against moto's ECS (in-process ``mock_aws``).

moto cannot start a FARGATE task with awsvpc networking (its ``run_task`` fails on the network interface's
``private_dns_name``: a moto bug, a 500 from moto's server), so the one ``run_task`` call of a launch is checked
with botocore's ``Stubber``: the exact request orch builds, which is what ECS receives. Everything else is real
moto: task definitions (registered once, reused by content hash across agents, a new revision when the content
changes), and watching and stopping a task that moto really runs (started on an EC2 container instance, the one
kind of task moto can run).
"""

from __future__ import annotations

import json
import types
import uuid
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from orch.agents.infrastructure import LaunchRequest
from orch.agents.infrastructure.ecs import EcsHandle, EcsInfrastructure, exit_status
from orch.agents.settings import AgentSettings
from orch.exceptions import InfrastructureError

pytestmark = [pytest.mark.unit, pytest.mark.aws]
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:orch/api-key-AbCdEf"


def settings(**extra: Any) -> AgentSettings:
    values: dict[str, Any] = {
        "ecs_cluster": "orch",
        "ecs_subnets": "subnet-a,subnet-b",
        "ecs_security_groups": "sg-1",
        "ecs_task_role_arn": "arn:aws:iam::123456789012:role/orch-task",
        "ecs_execution_role_arn": "arn:aws:iam::123456789012:role/orch-exec",
        "ecs_log_group": "/orch/runs",
        "ecs_api_key_secret_arn": SECRET,
        "ecs_poll_interval": 0.001,
        **extra,
    }
    return AgentSettings(**values)


def request(**overrides: Any) -> LaunchRequest:
    run_id = uuid.uuid4()
    return LaunchRequest(
        flow_run=types.SimpleNamespace(id=run_id),
        deployment={"id": str(uuid.uuid4()), "name": "nightly", "flow_name": "hello"},
        env={
            "ORCH_FLOW_RUN_ID": str(run_id),
            "ORCH_API_URL": "https://api.example.com",
            "ORCH_API_KEY": "orch_secret_value",
            "ORCH_HOME": "/home/agent/.orch",
            "ORCH_LOG_TO_CONSOLE": "false",
        },
        overrides={"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/flows:7", **overrides},
    )


def test_task_definition_is_registered_once_and_reused_while_unchanged(ecs: Any) -> None:
    first = EcsInfrastructure(settings=settings(), ecs_client=ecs)
    arn = first.ensure_task_definition(request())
    assert arn.endswith("task-definition/orch-hello-nightly:1")
    assert first.ensure_task_definition(request()) == arn
    # Another agent (empty cache) finds the revision by its content-hash tag instead of registering one.
    assert EcsInfrastructure(settings=settings(), ecs_client=ecs).ensure_task_definition(request()) == arn
    assert len(ecs.list_task_definitions(familyPrefix="orch-hello-nightly")["taskDefinitionArns"]) == 1

    described = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    assert described["requiresCompatibilities"] == ["FARGATE"]
    assert described["networkMode"] == "awsvpc"
    assert (described["cpu"], described["memory"]) == ("512", "1024")
    assert described["taskRoleArn"].endswith("role/orch-task")
    assert described["executionRoleArn"].endswith("role/orch-exec")
    (container,) = described["containerDefinitions"]
    assert container["image"].endswith("flows:7")
    assert container["secrets"] == [{"name": "ORCH_API_KEY", "valueFrom": SECRET}]
    assert "orch_secret_value" not in json.dumps(described)
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    assert container["logConfiguration"]["options"]["awslogs-group"] == "/orch/runs"
    assert container["logConfiguration"]["options"]["awslogs-stream-prefix"] == "orch"

    # A new image (a redeploy) is a new revision; the old content still maps to revision 1.
    changed = first.ensure_task_definition(request(image="flows:8", cpu="1024", memory="2048"))
    assert changed.endswith(":2")
    assert ecs.describe_task_definition(taskDefinition=changed)["taskDefinition"]["cpu"] == "1024"


def test_run_task_request_is_fargate_awsvpc_with_the_run_id_and_no_plain_api_key(ecs: Any) -> None:
    infra = EcsInfrastructure(settings=settings(ecs_assign_public_ip=True), ecs_client=ecs)
    req = request()
    definition = infra.ensure_task_definition(req)  # real moto, cached for the launch below
    task_arn = f"arn:aws:ecs:us-east-1:123456789012:task/orch/{uuid.uuid4().hex}"
    expected = {
        "cluster": "orch",
        "taskDefinition": definition,
        "launchType": "FARGATE",
        "count": 1,
        "startedBy": req.run_id,
        "tags": [{"key": "orch:flow-run-id", "value": req.run_id}],
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": ["subnet-a", "subnet-b"],
                "securityGroups": ["sg-1"],
                "assignPublicIp": "ENABLED",
            }
        },
        "overrides": {
            "containerOverrides": [
                {
                    "name": "orch",
                    "command": ["python", "-m", "orch.engine", req.run_id],
                    "environment": [
                        {"name": "ORCH_FLOW_RUN_ID", "value": req.run_id},
                        {"name": "ORCH_API_URL", "value": "https://api.example.com"},
                        {"name": "ORCH_LOG_TO_CONSOLE", "value": "false"},
                    ],
                }
            ]
        },
    }
    with Stubber(ecs) as stub:
        stub.add_response("run_task", {"tasks": [{"taskArn": task_arn}], "failures": []}, expected)
        handle = infra.launch(req)
        stub.assert_no_pending_responses()
    assert handle.ident == task_arn
    assert handle.cluster == "orch"

    with Stubber(ecs) as stub:
        stub.add_response(
            "run_task", {"tasks": [], "failures": [{"arn": "x", "reason": "RESOURCE:ENI", "detail": "limit"}]}
        )
        with pytest.raises(InfrastructureError, match="RESOURCE:ENI"):
            infra.launch(req)


def test_launch_refuses_missing_network_and_a_key_without_its_secret(ecs: Any) -> None:
    with pytest.raises(InfrastructureError, match="ORCH_ECS_SUBNETS"):
        EcsInfrastructure(settings=settings(ecs_subnets=""), ecs_client=ecs).launch(request())
    with pytest.raises(InfrastructureError, match="ORCH_ECS_API_KEY_SECRET_ARN") as err:
        EcsInfrastructure(settings=settings(ecs_api_key_secret_arn=None), ecs_client=ecs).launch(request())
    assert "orch_secret_value" not in str(err.value)
    with pytest.raises(InfrastructureError, match="ORCH_ECS_CLUSTER"):
        EcsInfrastructure(settings=settings(ecs_cluster=None), ecs_client=ecs).launch(request())


def _ec2_task(ecs: Any) -> str:
    """A task moto really runs: an EC2 launch on a registered container instance."""
    from moto.ec2 import utils as ec2_utils

    ec2 = boto3.resource("ec2", region_name="us-east-1")
    (instance,) = ec2.create_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
    document = json.dumps(ec2_utils.generate_instance_identity_document(instance))
    ecs.register_container_instance(cluster="orch", instanceIdentityDocument=document)
    ecs.register_task_definition(
        family="plain", containerDefinitions=[{"name": "orch", "image": "flows:7", "memory": 256}]
    )
    run_id = str(uuid.uuid4())
    task = ecs.run_task(cluster="orch", taskDefinition="plain", launchType="EC2", startedBy=run_id)
    return str(task["tasks"][0]["taskArn"])


def test_a_watched_task_is_stopped_on_cancel_and_reports_why(ecs: Any) -> None:
    infra = EcsInfrastructure(settings=settings(), ecs_client=ecs)
    handle = EcsHandle(_ec2_task(ecs), "orch", str(uuid.uuid4()))
    assert infra.poll(handle) is None  # running
    infra.kill(handle)
    status = infra.poll(handle)
    assert status is not None  # (moto reports exit code 0 for a stopped container; ECS would say 137 or none)
    assert "Cancelled in orch" in status.reason
    gone = EcsHandle("arn:aws:ecs:us-east-1:123456789012:task/orch/0000", "orch", "r")
    status = infra.poll(gone)
    assert status is not None and "no longer exists" in status.reason


def test_exit_status_carries_the_stop_code_reason_and_exit_code() -> None:
    assert exit_status({"lastStatus": "RUNNING"}) is None
    failed = exit_status(
        {
            "lastStatus": "STOPPED",
            "stopCode": "TaskFailedToStart",
            "stoppedReason": "CannotPullContainerError: pull image manifest has been retried 5 time(s)",
            "containers": [{"name": "orch", "reason": "CannotPullContainerError"}],
        }
    )
    assert failed is not None and failed.code is None and not failed.ok
    assert failed.reason.startswith("ECS task stopped (TaskFailedToStart): CannotPullContainerError")
    exited = exit_status(
        {
            "lastStatus": "STOPPED",
            "stopCode": "EssentialContainerExited",
            "stoppedReason": "Essential container in task exited",
            "containers": [{"name": "orch", "exitCode": 3}],
        }
    )
    assert exited is not None and exited.code == 3
    assert "exit code 3" in exited.reason
    ok = exit_status({"lastStatus": "STOPPED", "containers": [{"name": "orch", "exitCode": 0}]})
    assert ok is not None and ok.ok


def test_the_control_planes_ecs_event_handler_finds_the_run_of_a_launched_task(ecs: Any) -> None:
    """Contract with ``orch.control_plane.ecs_events``: a stopped task's event carries what run_task was given."""
    from orch.control_plane.ecs_events import run_id_of

    infra = EcsInfrastructure(settings=settings(), ecs_client=ecs)
    req = request()
    sent = infra.run_task_request(req, "arn:aws:ecs:us-east-1:123456789012:task-definition/orch-hello-nightly:1")
    event_detail = {"overrides": sent["overrides"], "startedBy": sent["startedBy"], "lastStatus": "STOPPED"}
    assert str(run_id_of(event_detail)) == req.run_id
    assert str(run_id_of({"startedBy": sent["startedBy"]})) == req.run_id
