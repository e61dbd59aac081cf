"""The payloads AWS hands orch's Lambda handlers, built as the Lambda runtime delivers them.

Lambda cannot run on this machine (it needs Docker), so the end-to-end test calls the handlers in-process with
these events: an HTTP API v2 request (API Gateway HTTP API and Function URLs share the format), and an SQS
event-source batch wrapping messages exactly as ``ReceiveMessage`` returned them.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import uuid
from typing import Any


@dataclasses.dataclass
class LambdaContext:
    """The attributes of the runtime's context object that Powertools reads."""

    function_name: str = "orch-api"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"


def http_event(method: str, path: str, body: Any = None, query: str = "") -> dict[str, Any]:
    """An HTTP API v2 event for ``method path`` (JSON body base64-encoded, as API Gateway sends it)."""
    raw = json.dumps(body) if body is not None else None
    now = dt.datetime.now(dt.UTC)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "e2e.execute-api.us-east-1.amazonaws.com", "content-type": "application/json"},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "e2e",
            "domainName": "e2e.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "e2e",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "orch-e2e",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": base64.b64encode(raw.encode()).decode() if raw else None,
        "isBase64Encoded": bool(raw),
    }


def http_response_json(response: dict[str, Any]) -> tuple[int, Any]:
    """``(status, decoded JSON body)`` of an HTTP API v2 response from Mangum."""
    payload = response.get("body") or ""
    if response.get("isBase64Encoded"):
        payload = base64.b64decode(payload).decode()
    return int(response["statusCode"]), json.loads(payload) if payload else None


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str = "us-east-1") -> dict[str, Any]:
    """The event an SQS event-source mapping invokes a function with, for messages from ``ReceiveMessage``."""
    records = []
    for message in messages:
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}
