"""The agent's run sources in-process: which runs they take, and in what order, while the agent has room.

The database source runs against the real API app and database (SQLite and PostgreSQL); the SQS source against
the moto server (real HTTP, real boto3). Nothing is claimed here: the tests play the agent's part by hand (ack,
release, freeing the reserved slot) to see what the source takes next.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from orch.agents.sources import Candidate, Capacity, DatabaseSource, SqsSource
from orch.control_plane.schemas.states import StateCreate, StateType

pytestmark = pytest.mark.integration

Out = queue.PriorityQueue[tuple[int, int, Candidate]]


def _next(out: Out, timeout: float = 30.0) -> Candidate:
    return out.get(timeout=timeout)[2]


def _scheduled(client: Any, flow_id: str, work_queue: str, seconds_ago: float) -> str:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)
    state = {"type": "SCHEDULED", "state_details": {"scheduled_time": at.isoformat()}}
    body = {"flow_id": flow_id, "work_queue_name": work_queue, "state": state}
    return str(client.request("POST", "/flow_runs/", body)["id"])


@pytest.fixture
def database_source(client: Any) -> Iterator[DatabaseSource]:
    client.request("POST", "/work_queues/", {"name": "hi", "priority": 1})
    client.request("POST", "/work_queues/", {"name": "lo", "priority": 50})
    source = DatabaseSource(client, {"lo": 50, "hi": 1}, wait_seconds=0.5, agent_name="test", backoff_max=1)
    yield source
    source.stop()


def test_database_source_gives_a_free_slot_to_the_best_due_run(client: Any, database_source: DatabaseSource) -> None:
    flow_id = str(client.create_flow("sources").id)
    lo = [_scheduled(client, flow_id, "lo", 600 - i) for i in range(2)]
    hi = [_scheduled(client, flow_id, "hi", 60 - i) for i in range(2)]
    out: Out = queue.PriorityQueue()
    capacity = Capacity(1)
    database_source.start(out, capacity)
    first = _next(out)
    assert (str(first.run_id), first.work_queue, first.priority) == (hi[0], "hi", 1)
    # The claim is answered WAIT for a while: the run stays Scheduled on the server (first in its answers) and
    # held back in the agent. The freed slot goes to the next best run, not to nothing.
    first.release(60)
    capacity.unreserve()
    second = _next(out)
    assert str(second.run_id) == hi[1]
    # Claimed (and done at once): the slot is free again, and the held-back run is still not handed out twice.
    assert client.set_flow_run_state(second.run_id, StateCreate(type=StateType.PENDING)).status.value == "ACCEPT"
    second.ack()
    capacity.unreserve()
    assert str(_next(out).run_id) == lo[0]
    assert out.empty()


@pytest.fixture
def sqs_queues(moto: Any, aws_env: Any) -> dict[str, str]:
    aws_env(moto)
    sqs = moto.client("sqs")
    return {name: sqs.create_queue(QueueName=f"src-{name}")["QueueUrl"] for name in ("hi", "lo")}


def _send(moto: Any, url: str, n: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    for run_id in ids:
        moto.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps({"flow_run_id": run_id}))
    return ids


def _visible(moto: Any, url: str) -> int:
    attrs = moto.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


@pytest.mark.aws
def test_sqs_source_receives_from_lower_priority_queues_only_when_higher_ones_are_empty(
    moto: Any, sqs_queues: dict[str, str]
) -> None:
    lo = _send(moto, sqs_queues["lo"], 2)
    hi = _send(moto, sqs_queues["hi"], 1)
    source = SqsSource(None, {"lo": (50, sqs_queues["lo"]), "hi": (1, sqs_queues["hi"])}, wait_seconds=2)
    out: Out = queue.PriorityQueue()
    capacity = Capacity(3)
    source.start(out, capacity)
    try:
        first = _next(out)
        assert (str(first.run_id), first.work_queue) == (hi[0], "hi")
        # Room for two more, but the sweep that found a high-priority run stopped there; the next sweep goes to
        # the low-priority queue only after the high-priority one answered with nothing.
        taken = sorted(str(_next(out).run_id) for _ in range(2))
        assert taken == sorted(lo)
        assert _visible(moto, sqs_queues["lo"]) == 0
    finally:
        source.stop()


@pytest.mark.aws
def test_sqs_source_with_one_slot_leaves_lower_priority_messages_alone(moto: Any, sqs_queues: dict[str, str]) -> None:
    lo = _send(moto, sqs_queues["lo"], 2)
    hi = _send(moto, sqs_queues["hi"], 2)
    source = SqsSource(None, {"lo": (50, sqs_queues["lo"]), "hi": (1, sqs_queues["hi"])}, wait_seconds=2)
    out: Out = queue.PriorityQueue()
    capacity = Capacity(1)
    source.start(out, capacity)
    try:
        order = []
        for _ in range(4):
            candidate = _next(out)
            order.append(str(candidate.run_id))
            if candidate.work_queue == "hi":
                # While the slot is taken by a high-priority run, no low-priority message was received (hidden).
                assert _visible(moto, sqs_queues["lo"]) == 2
            candidate.ack()
            capacity.unreserve()
        assert set(order[:2]) == set(hi)
        assert set(order[2:]) == set(lo)
    finally:
        source.stop()
