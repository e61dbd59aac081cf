"""The agent loop with the ECS launcher: a task that fails to start makes its run Crashed with ECS's reason, and a
run turned Cancelling has its task stopped (``stop_task``) and ends Cancelled.

The agent runs in-process (``Agent.handle`` and ``Agent.watch``, what its loop calls) against the real API app and
database; ECS is moto in-process. moto cannot start a FARGATE task with awsvpc networking and never produces a
``TaskFailedToStart`` stop, so those two answers come from botocore's ``Stubber`` (ECS's documented response
shapes): the ``run_task`` of each launch, and the ``describe_tasks`` that reports the failed start. The
cancellation test stubs only ``run_task``, which returns a task moto really runs (an EC2 launch); watching and
stopping it is real moto.
"""

from __future__ import annotations

import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from orch.agents.agent import Agent
from orch.agents.infrastructure import LaunchRequest
from orch.agents.infrastructure.ecs import EcsInfrastructure
from orch.agents.sources import Candidate
from tests.agents.test_ecs import _ec2_task, settings

pytestmark = [pytest.mark.integration, pytest.mark.aws]


@pytest.fixture
def agent(client: Any, ecs: Any) -> Iterator[Agent]:
    configured = settings()
    made = Agent(
        ["default"],
        infra="ecs",
        client=client,
        settings=configured,
        infra_options={"settings": configured, "ecs_client": ecs},
    )
    # Register the task definition for runs without a deployment now, on real moto, so that the launch inside the
    # Stubber below only makes its run_task call.
    probe = LaunchRequest(flow_run=types.SimpleNamespace(id=uuid.uuid4()), deployment=None, env={})
    assert isinstance(made.infrastructure, EcsInfrastructure)
    made.infrastructure.ensure_task_definition(probe)
    yield made
    made.infrastructure.close()


def _due_run(client: Any) -> uuid.UUID:
    flow_id = str(client.create_flow("on-ecs").id)
    body = {"flow_id": flow_id, "work_queue_name": "default", "state": {"type": "SCHEDULED"}}
    return uuid.UUID(client.request("POST", "/flow_runs/", body)["id"])


def test_a_task_that_fails_to_start_crashes_its_run_with_the_stop_reason(client: Any, ecs: Any, agent: Agent) -> None:
    run_id = _due_run(client)
    task_arn = f"arn:aws:ecs:us-east-1:123456789012:task/orch/{uuid.uuid4().hex}"
    stopped = {
        "taskArn": task_arn,
        "lastStatus": "STOPPED",
        "stopCode": "TaskFailedToStart",
        "stoppedReason": "CannotPullContainerError: pull image manifest has been retried 5 time(s): not found",
        "containers": [{"name": "orch", "lastStatus": "STOPPED", "reason": "CannotPullContainerError"}],
    }
    with Stubber(ecs) as stub:
        stub.add_response("run_task", {"tasks": [{"taskArn": task_arn}], "failures": []})
        stub.add_response(
            "describe_tasks", {"tasks": [stopped], "failures": []}, {"cluster": "orch", "tasks": [task_arn]}
        )
        agent.handle(Candidate(run_id, "default", 1))
        run = client.read_flow_run(run_id)
        assert (run.state_type.value, run.infrastructure_pid) == ("PENDING", task_arn)
        agent.watch()
        stub.assert_no_pending_responses()
    state = client.read_flow_run(run_id).state
    assert state.type.value == "CRASHED"
    assert "ECS task stopped (TaskFailedToStart): CannotPullContainerError" in state.message
    assert not agent.active


def test_cancelling_a_run_stops_its_task_and_ends_it_cancelled(client: Any, ecs: Any, agent: Agent) -> None:
    from orch.control_plane.schemas.states import StateCreate, StateType

    run_id = _due_run(client)
    task_arn = _ec2_task(ecs)
    with Stubber(ecs) as stub:
        stub.add_response("run_task", {"tasks": [{"taskArn": task_arn}], "failures": []})
        agent.handle(Candidate(run_id, "default", 1))
    assert client.read_flow_run(run_id).infrastructure_pid == task_arn
    # The engine inside the task would report Running; nothing runs in moto's task, so the test does.
    assert client.set_flow_run_state(run_id, StateCreate(type=StateType.RUNNING)).status.value == "ACCEPT"
    agent.watch()  # running: nothing to do
    assert run_id in agent.active
    assert client.set_flow_run_state(run_id, StateCreate(type=StateType.CANCELLING)).status.value == "ACCEPT"
    agent.watch()
    state = client.read_flow_run(run_id).state
    assert state.type.value == "CANCELLED"
    assert "stopped its infrastructure" in state.message
    (task,) = ecs.describe_tasks(cluster="orch", tasks=[task_arn])["tasks"]
    assert (task["lastStatus"], task["stoppedReason"]) == ("STOPPED", "Cancelled in orch")
    assert not agent.active
