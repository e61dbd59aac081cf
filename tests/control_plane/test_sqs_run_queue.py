"""The SQS adapter of the RunQueue port on in-process moto (``mock_aws``): queue + DLQ with redrive and
encryption, delayed messages, dead letters peeked without being consumed, idempotent creation, deletion.
The same adapter runs against moto's server and LocalStack in test_work_queues.py and the end-to-end test."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

pytestmark = [pytest.mark.unit, pytest.mark.aws]


@pytest.fixture
def sqs(in_process_aws: None) -> Any:
    import boto3

    return boto3.client("sqs")


def test_queue_and_dlq_with_redrive_and_encryption(sqs: Any) -> None:
    from orch.control_plane.run_queue.sqs import SqsRunQueue

    queue = SqsRunQueue(prefix="orch-", max_receives=3, visibility_timeout=30)
    url, dlq = queue.create_queue("etl")
    assert url is not None and url.endswith("/orch-etl")
    assert dlq is not None and dlq.endswith("/orch-etl-dlq")
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attrs["RedrivePolicy"])["maxReceiveCount"] == 3
    assert attrs["VisibilityTimeout"] == "30"
    assert attrs["SqsManagedSseEnabled"] == "true"
    # Creating again (another server, a retry) answers the same queues.
    assert queue.create_queue("etl") == (url, dlq)


def test_enqueue_delay_and_message_body(sqs: Any) -> None:
    from orch.control_plane.run_queue.sqs import SqsRunQueue

    queue = SqsRunQueue(prefix="orch-")
    url, _ = queue.create_queue("q")
    now_id, later_id = uuid.uuid4(), uuid.uuid4()
    queue.enqueue(url, now_id, 0)
    queue.enqueue(url, later_id, 900)
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)["Messages"]
    assert [json.loads(m["Body"]) for m in got] == [{"flow_run_id": str(now_id)}]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attrs["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    with pytest.raises(ValueError, match="no SQS queue"):
        queue.enqueue(None, now_id, 0)


def test_dead_letters_are_peeked_not_consumed(sqs: Any) -> None:
    from orch.control_plane.run_queue.sqs import SqsRunQueue

    queue = SqsRunQueue(prefix="orch-")
    _, dlq = queue.create_queue("p")
    sqs.send_message(QueueUrl=dlq, MessageBody="not json")
    for _ in range(2):
        count, samples = queue.dead_letters(dlq)
        assert count == 1
        assert samples == ["not json"]


def test_delete_removes_both_queues_and_tolerates_missing_ones(sqs: Any) -> None:
    from orch.control_plane.run_queue.sqs import SqsRunQueue

    queue = SqsRunQueue(prefix="orch-")
    url, dlq = queue.create_queue("gone")
    queue.delete_queue(url, dlq)
    assert sqs.list_queues().get("QueueUrls", []) == []
    queue.delete_queue(url, dlq)  # already gone: no error


def test_queue_names_fit_sqs_rules(sqs: Any) -> None:
    from orch.control_plane.run_queue.sqs import SQS_NAME_MAX, SqsRunQueue

    queue = SqsRunQueue(prefix="orch-")
    name = queue.queue_name("a.b" + "x" * 200)
    assert len(name) + len("-dlq") <= SQS_NAME_MAX
    assert "." not in name
