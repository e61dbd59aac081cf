"""Work queues: the API, the database queue's long poll, concurrency limits, agents, and the SQS run queue
(against moto's server: real HTTP, real boto3), the dispatcher and zombie detection."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _flow(api: Any) -> str:
    return api.post("/flows/", json={"name": "wq-flow"}).json()["id"]


def _run(api: Any, flow_id: str, queue: str, *, at: dt.datetime | None = None, retries: int = 0) -> dict[str, Any]:
    state: dict[str, Any] = {"type": "SCHEDULED"}
    if at is not None:
        state["state_details"] = {"scheduled_time": at.isoformat()}
    body = {"flow_id": flow_id, "work_queue_name": queue, "state": state, "empirical_policy": {"retries": retries}}
    response = api.post("/flow_runs/", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_crud_pause_and_duplicate_names(api: Any) -> None:
    created = api.post("/work_queues/", json={"name": "etl", "priority": 5, "concurrency_limit": 3})
    assert created.status_code == 201
    queue = created.json()
    assert (queue["name"], queue["priority"], queue["concurrency_limit"]) == ("etl", 5, 3)
    assert api.post("/work_queues/", json={"name": "etl"}).status_code == 409
    assert api.post("/work_queues/", json={"name": "bad name!"}).status_code == 422
    assert api.post(f"/work_queues/{queue['id']}/pause").status_code == 204
    assert api.get("/work_queues/name/etl").json()["paused"] is True
    assert api.post(f"/work_queues/{queue['id']}/resume").status_code == 204
    assert api.get(f"/work_queues/{queue['id']}").json()["paused"] is False
    assert [q["name"] for q in api.post("/work_queues/filter", json={}).json()] == ["etl"]
    assert api.delete(f"/work_queues/{queue['id']}").status_code == 204
    assert api.get("/work_queues/name/etl").status_code == 404


def test_get_runs_returns_due_runs_only_and_respects_pause(api: Any) -> None:
    flow_id = _flow(api)
    now = dt.datetime.now(dt.UTC)
    due = _run(api, flow_id, "q1", at=now - dt.timedelta(seconds=5))
    _run(api, flow_id, "q1", at=now + dt.timedelta(hours=1))
    _run(api, flow_id, "other", at=now)
    got = api.post("/work_queues/q1/get_runs", json={}).json()["runs"]
    assert [r["id"] for r in got] == [due["id"]]
    preview = api.get("/work_queues/q1/preview").json()
    assert len(preview) == 2
    assert preview[0]["id"] == due["id"]
    queue_id = api.get("/work_queues/name/q1").json()["id"]
    api.post(f"/work_queues/{queue_id}/pause")
    assert api.post("/work_queues/q1/get_runs", json={}).json()["runs"] == []


def test_get_runs_waits_for_a_run_that_becomes_due(api: Any) -> None:
    flow_id = _flow(api)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.6)
    run = _run(api, flow_id, "waiting", at=soon)
    got = api.post("/work_queues/waiting/get_runs", json={"wait_seconds": 5}).json()["runs"]
    assert [r["id"] for r in got] == [run["id"]]
    assert dt.datetime.now(dt.UTC) >= soon


def test_concurrency_limit_limits_get_runs_and_claims(api: Any) -> None:
    api.post("/work_queues/", json={"name": "limited", "concurrency_limit": 2})
    flow_id = _flow(api)
    runs = [_run(api, flow_id, "limited") for _ in range(4)]
    assert len(api.post("/work_queues/limited/get_runs", json={}).json()["runs"]) == 2
    answers = [
        api.post(f"/flow_runs/{r['id']}/set_state", json={"state": {"type": "PENDING"}}).json()["status"] for r in runs
    ]
    assert answers == ["ACCEPT", "ACCEPT", "WAIT", "WAIT"]
    assert api.post("/work_queues/limited/get_runs", json={}).json()["runs"] == []
    status = api.get("/work_queues/limited/status").json()
    assert (status["active"], status["waiting"]) == (2, 2)


def test_agents_heartbeat_and_list(api: Any) -> None:
    api.post("/work_queues/", json={"name": "a-queue"})
    first = api.post("/agents/heartbeat", json={"name": "agent-1", "work_queues": ["a-queue"], "infra_type": "process"})
    assert first.status_code == 200
    again = api.post("/agents/heartbeat", json={"name": "agent-1", "work_queues": ["a-queue"]}).json()
    assert again["id"] == first.json()["id"]
    assert again["last_seen"] >= first.json()["last_seen"]
    listed = api.post("/agents/filter").json()
    assert [a["name"] for a in listed] == ["agent-1"]
    assert [a["name"] for a in api.get("/work_queues/a-queue/status").json()["agents"]] == ["agent-1"]
    assert api.post("/agents/heartbeat", json={"name": "x", "status": "DANCING"}).status_code == 422


def test_zombie_runs_crash_and_retry(api: Any, database: Any) -> None:
    from orch.control_plane.services import zombies
    from orch.control_plane.settings import get_settings

    flow_id = _flow(api)
    once = api.post("/flow_runs/", json={"flow_id": flow_id, "state": {"type": "PENDING"}}).json()
    twice = api.post(
        "/flow_runs/", json={"flow_id": flow_id, "state": {"type": "PENDING"}, "empirical_policy": {"retries": 1}}
    ).json()
    for run in (once, twice):
        api.post(f"/flow_runs/{run['id']}/set_state", json={"state": {"type": "RUNNING"}})
    settings = get_settings()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.heartbeat_timeout + 5)
    assert zombies.tick(database, settings, now=later) == 2
    crashed = api.get(f"/flow_runs/{once['id']}").json()["state"]
    assert crashed["type"] == "CRASHED"
    assert "No heartbeat" in crashed["message"]
    retried = api.get(f"/flow_runs/{twice['id']}").json()["state"]
    assert (retried["type"], retried["name"]) == ("SCHEDULED", "AwaitingRetry")
    assert zombies.tick(database, settings, now=later) == 0


# -- SQS ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def sqs_mode(moto: Any, aws_env: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from orch.control_plane.settings import clear_settings_cache

    aws_env(moto)
    monkeypatch.setenv("ORCH_RUN_QUEUE", "sqs")
    monkeypatch.setenv("ORCH_SQS_QUEUE_PREFIX", "test-")
    clear_settings_cache()
    from orch.control_plane.run_queue import _sqs_queue

    _sqs_queue.cache_clear()
    yield moto.client("sqs")
    _sqs_queue.cache_clear()


def _receive(sqs: Any, url: str) -> list[dict[str, Any]]:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=0)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


@pytest.mark.aws
def test_sqs_queue_with_dlq_and_dispatch(api: Any, database: Any, sqs_mode: Any) -> None:
    from orch.control_plane.services import dispatcher
    from orch.control_plane.settings import get_settings

    sqs = sqs_mode
    queue = api.post("/work_queues/", json={"name": "sqs-q"}).json()
    assert queue["sqs_queue_url"].endswith("/test-sqs-q")
    assert queue["sqs_dlq_url"].endswith("/test-sqs-q-dlq")
    attrs = sqs.get_queue_attributes(QueueUrl=queue["sqs_queue_url"], AttributeNames=["All"])["Attributes"]
    assert json.loads(attrs["RedrivePolicy"])["maxReceiveCount"] == 5
    assert attrs["SqsManagedSseEnabled"] == "true"

    flow_id = _flow(api)
    run = _run(api, flow_id, "sqs-q")
    assert _receive(sqs, queue["sqs_queue_url"]) == [{"flow_run_id": run["id"]}]
    settings = get_settings()
    # Already sent for this scheduled time: the tick does not send it again.
    assert dispatcher.tick(database, settings) == 0
    # Far in the future: not sent now; the tick sends it once it comes within 15 minutes.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    far = _run(api, flow_id, "sqs-q", at=later)
    assert dispatcher.tick(database, settings) == 0
    assert dispatcher.tick(database, settings, now=later - dt.timedelta(minutes=5)) == 1
    # Sent with DelaySeconds=300: SQS holds it back until the run is due.
    attrs = sqs.get_queue_attributes(QueueUrl=queue["sqs_queue_url"], AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "1"
    assert far["id"] not in [b["flow_run_id"] for b in _receive(sqs, queue["sqs_queue_url"])]


@pytest.mark.aws
def test_sqs_dead_letters_show_in_status_and_delete_removes_queues(api: Any, sqs_mode: Any) -> None:
    sqs = sqs_mode
    queue = api.post("/work_queues/", json={"name": "poison"}).json()
    sqs.send_message(QueueUrl=queue["sqs_dlq_url"], MessageBody=json.dumps({"flow_run_id": "not-a-run"}))
    status = api.get("/work_queues/poison/status").json()
    assert status["dead_letters"] == 1
    assert "not-a-run" in status["dead_letter_samples"][0]
    assert api.delete(f"/work_queues/{queue['id']}").status_code == 204
    names = [u.rsplit("/", 1)[-1] for u in sqs.list_queues().get("QueueUrls", [])]
    assert "test-poison" not in names
    assert "test-poison-dlq" not in names


def test_claimed_runs_that_never_start_are_crashed(api: Any, database: Any) -> None:
    """An agent that dies between its accepted claim and the launch must not leave the run Pending forever."""
    from orch.control_plane.services import zombies
    from orch.control_plane.settings import get_settings

    flow_id = _flow(api)
    run = _run(api, flow_id, "claims")
    assert (
        api.post(f"/flow_runs/{run['id']}/set_state", json={"state": {"type": "PENDING"}}).json()["status"] == "ACCEPT"
    )
    settings = get_settings()
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.pending_timeout / 2)
    assert zombies.tick(database, settings, now=soon) == 0
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.pending_timeout + 5)
    assert zombies.tick(database, settings, now=later) == 1
    state = api.get(f"/flow_runs/{run['id']}").json()["state"]
    assert state["type"] == "CRASHED"
    assert "not started" in state["message"]
