"""The SQS adapter of the RunQueue port: a standard queue and a dead-letter queue per work queue.

Queue names are ``<prefix><work queue>`` and ``<prefix><work queue>-dlq``; messages are redriven to the DLQ after
``max_receives`` receives (a poison message — e.g. one naming a run that no agent can launch — ends there and shows
in ``orch work-queue inspect``). Queues are encrypted with SQS-managed keys. The boto3 client honours
``AWS_ENDPOINT_URL``, so tests point it at moto or LocalStack without special code.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from typing import Any

SQS_NAME_MAX = 80


class SqsRunQueue:
    kind = "sqs"

    def __init__(self, *, prefix: str, max_receives: int = 5, visibility_timeout: int = 60) -> None:
        self.prefix = prefix
        self.max_receives = max_receives
        self.visibility_timeout = visibility_timeout
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3

                self._client = boto3.client("sqs")
            return self._client

    def queue_name(self, work_queue: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_-]", "-", f"{self.prefix}{work_queue}")
        return base[: SQS_NAME_MAX - len("-dlq")]

    def create_queue(self, name: str) -> tuple[str | None, str | None]:
        qname = self.queue_name(name)
        dlq_url = self.client.create_queue(
            QueueName=f"{qname}-dlq",
            Attributes={"SqsManagedSseEnabled": "true", "MessageRetentionPeriod": str(14 * 86_400)},
        )["QueueUrl"]
        dlq_arn = self.client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue_url = self.client.create_queue(
            QueueName=qname,
            Attributes={
                "SqsManagedSseEnabled": "true",
                "VisibilityTimeout": str(self.visibility_timeout),
                "ReceiveMessageWaitTimeSeconds": "20",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": self.max_receives}),
            },
        )["QueueUrl"]
        return queue_url, dlq_url

    def delete_queue(self, queue_url: str | None, dlq_url: str | None) -> None:
        from botocore.exceptions import ClientError

        for url in (queue_url, dlq_url):
            if not url:
                continue
            try:
                self.client.delete_queue(QueueUrl=url)
            except ClientError as exc:
                if "NonExistentQueue" not in str(exc):
                    raise

    def enqueue(self, queue_url: str | None, run_id: uuid.UUID, delay_seconds: int) -> None:
        if not queue_url:
            raise ValueError("the work queue has no SQS queue (was it created while ORCH_RUN_QUEUE=database?)")
        self.client.send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps({"flow_run_id": str(run_id)}),
            DelaySeconds=max(0, min(900, delay_seconds)),
        )

    def dead_letters(self, dlq_url: str | None, sample: int = 5) -> tuple[int | None, list[str]]:
        if not dlq_url:
            return None, []
        attrs = self.client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]
        count = int(attrs.get("ApproximateNumberOfMessages", 0))
        bodies: list[str] = []
        if count and sample:
            # Peek: receive with a zero visibility timeout so the messages stay available.
            got = self.client.receive_message(
                QueueUrl=dlq_url, MaxNumberOfMessages=min(10, sample), VisibilityTimeout=0, WaitTimeSeconds=0
            )
            bodies = [m["Body"] for m in got.get("Messages", [])]
        return count, bodies
