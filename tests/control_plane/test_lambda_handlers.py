"""The Lambda entry points, invoked in-process with the event payloads Lambda really sends.

Lambda itself cannot run on this machine (it needs Docker, see shared/notes/aws-locally.md), so the handlers are
called directly, as the Lambda runtime would call them, against a real database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from typing import Any

import pytest

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class LambdaContext:
    function_name: str = "orch-api"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:orch-api"
    aws_request_id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))


def http_event(method: str, path: str, body: Any = None, *, version: str = "2.0") -> dict[str, Any]:
    """An HTTP API v2 / Function URL event (the two share this payload format)."""
    raw = json.dumps(body) if body is not None else None
    return {
        "version": version,
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "abc123.lambda-url.us-east-1.on.aws", "content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "t",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "22/Nov/2026:14:00:00 +0000",
            "timeEpoch": 1795000000000,
        },
        "body": base64.b64encode(raw.encode()).decode() if raw else None,
        "isBase64Encoded": bool(raw),
    }


@pytest.fixture
def handlers(database_url: str) -> Any:
    from orch.control_plane import lambda_handlers

    lambda_handlers._state.clear()
    yield lambda_handlers
    lambda_handlers._state.clear()


def call(handlers: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = handlers.api_handler(http_event(method, path, body), LambdaContext())
    payload = response["body"]
    if response.get("isBase64Encoded"):
        payload = base64.b64decode(payload).decode()
    return response["statusCode"], json.loads(payload) if payload else None


def test_api_handler_serves_the_api(handlers: Any) -> None:
    status, health = call(handlers, "GET", "/api/health")
    assert status == 200 and health["status"] == "ok"
    status, flow = call(handlers, "POST", "/api/flows/", {"name": "on-lambda"})
    assert status == 201
    status, run = call(handlers, "POST", "/api/flow_runs/", {"flow_id": flow["id"], "state": {"type": "SCHEDULED"}})
    assert status == 201 and run["state"]["type"] == "SCHEDULED"
    status, answer = call(handlers, "POST", f"/api/flow_runs/{run['id']}/set_state", {"state": {"type": "PENDING"}})
    assert status == 201 and answer["status"] == "ACCEPT"
    status, answer = call(handlers, "POST", f"/api/flow_runs/{run['id']}/set_state", {"state": {"type": "PENDING"}})
    assert status == 200 and answer["status"] == "REJECT"
    status, missing = call(handlers, "GET", f"/api/flow_runs/{uuid.uuid4()}")
    assert status == 404 and "not found" in missing["detail"]


def test_api_handler_emits_metrics(handlers: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, flow = call(handlers, "POST", "/api/flows/", {"name": "metrics"})
    call(handlers, "POST", "/api/flow_runs/", {"flow_id": flow["id"], "state": {"type": "SCHEDULED"}})
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = {m["Name"] for blob in emitted for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"RunsCreated", "StateTransitions"} <= names


def _ecs_event(run_id: str, *, stop_code: str, exit_code: int | None, reason: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "flow", "lastStatus": "STOPPED"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    return {
        "version": "0",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "detail": {
            "lastStatus": "STOPPED",
            "stopCode": stop_code,
            "stoppedReason": reason,
            "startedBy": run_id,
            "containers": [container],
            "overrides": {
                "containerOverrides": [{"name": "flow", "environment": [{"name": "ORCH_FLOW_RUN_ID", "value": run_id}]}]
            },
        },
    }


def test_ecs_events_crash_unfinished_runs_only(handlers: Any) -> None:
    _, flow = call(handlers, "POST", "/api/flows/", {"name": "ecs"})
    runs = []
    for _ in range(3):
        _, run = call(handlers, "POST", "/api/flow_runs/", {"flow_id": flow["id"], "state": {"type": "PENDING"}})
        runs.append(run["id"])
    call(handlers, "POST", f"/api/flow_runs/{runs[2]}/set_state", {"state": {"type": "RUNNING"}})
    call(handlers, "POST", f"/api/flow_runs/{runs[2]}/set_state", {"state": {"type": "COMPLETED"}})
    events = [
        _ecs_event(runs[0], stop_code="TaskFailedToStart", exit_code=None, reason="CannotPullContainerError"),
        _ecs_event(runs[1], stop_code="EssentialContainerExited", exit_code=137, reason="OutOfMemoryError"),
        _ecs_event(runs[2], stop_code="EssentialContainerExited", exit_code=0, reason="Essential container exited"),
    ]
    records = [{"messageId": str(i), "body": json.dumps(e)} for i, e in enumerate(events)]
    result = handlers.ecs_events_handler({"Records": records}, LambdaContext())
    assert result == {"batchItemFailures": [], "handled": 2}
    states = [call(handlers, "GET", f"/api/flow_runs/{r}")[1]["state"] for r in runs]
    assert states[0]["type"] == "CRASHED" and "CannotPullContainerError" in states[0]["message"]
    assert states[1]["type"] == "CRASHED" and "exit code 137" in states[1]["message"]
    assert states[2]["type"] == "COMPLETED"


def test_services_handler_runs_a_tick(handlers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from orch.control_plane.settings import clear_settings_cache

    monkeypatch.setenv("ORCH_LATE_RUNS_THRESHOLD", "0")
    clear_settings_cache()
    _, flow = call(handlers, "POST", "/api/flows/", {"name": "tick"})
    past = "2026-01-01T00:00:00+00:00"
    _, run = call(
        handlers,
        "POST",
        "/api/flow_runs/",
        {"flow_id": flow["id"], "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": past}}},
    )
    # EventBridge delivered through SQS (as in the LocalStack end-to-end test): one record, one tick.
    tick = {
        "Records": [{"messageId": "1", "body": json.dumps({"source": "aws.events", "detail-type": "Scheduled Event"})}]
    }
    result = handlers.services_handler(tick, LambdaContext())
    assert result["results"]["late_runs"] == 1
    assert call(handlers, "GET", f"/api/flow_runs/{run['id']}")[1]["state"]["name"] == "Late"
