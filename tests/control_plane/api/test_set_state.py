"""``POST /api/flow_runs/{id}/set_state``: the answers a client sees (ACCEPT 201, REJECT, WAIT with a delay, ABORT),
retries through AwaitingRetry, ``force``, and validation — on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import pytest

from tests.factories import create_flow_run, drive, propose, state

pytestmark = pytest.mark.integration


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_accept_is_201_and_returns_the_new_state(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("SCHEDULED"))
    response = propose(api, run["id"], "PENDING", message="claimed by agent-1")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "ACCEPT"
    assert body["state"]["type"] == "PENDING"
    assert body["state"]["message"] is None or body["state"]["message"] == "claimed by agent-1"
    assert body["details"]["reason"] is None
    stored = api.get(f"/flow_runs/{run['id']}").json()
    assert stored["state_type"] == "PENDING"
    assert stored["state_version"] == 2


def test_reject_is_200_with_reason_and_the_unchanged_state(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("SCHEDULED"))
    drive(api, run["id"], "PENDING")
    response = propose(api, run["id"], "PENDING")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "REJECT"
    assert body["details"]["reason"]
    assert body["state"]["type"] == "PENDING"
    assert api.get(f"/flow_runs/{run['id']}").json()["state_version"] == 2
    assert len(api.get(f"/flow_runs/{run['id']}/states").json()) == 2


def test_wait_for_a_future_scheduled_time_carries_the_delay(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("SCHEDULED", scheduled_time=now() + dt.timedelta(seconds=120)))
    body = propose(api, run["id"], "PENDING").json()
    assert body["status"] == "WAIT"
    assert body["details"]["reason"]
    assert 100 < body["details"]["delay_seconds"] <= 120
    assert body["state"]["type"] == "SCHEDULED"
    assert api.get(f"/flow_runs/{run['id']}").json()["state_version"] == 1


def test_abort_for_a_cancelling_run(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("SCHEDULED"))
    drive(api, run["id"], "PENDING", "CANCELLING")
    response = propose(api, run["id"], "RUNNING")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ABORT"
    assert body["details"]["reason"]
    assert api.get(f"/flow_runs/{run['id']}").json()["state_type"] == "CANCELLING"


def test_cancelling_a_scheduled_run_cancels_it_at_once(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("SCHEDULED"))
    response = propose(api, run["id"], "CANCELLING")
    assert response.status_code == 201
    assert response.json()["state"]["type"] == "CANCELLED"
    stored = api.get(f"/flow_runs/{run['id']}").json()
    assert stored["state_type"] == "CANCELLED"
    assert stored["end_time"] is not None


def test_retry_then_final_failure(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("SCHEDULED"), empirical_policy={"retries": 1, "retry_delay": 60})
    drive(api, run["id"], "PENDING", "RUNNING")
    before = now()
    first = propose(api, run["id"], "FAILED", message="boom")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "REJECT"
    assert body["details"]["reason"]
    assert body["state"]["type"] == "SCHEDULED"
    assert body["state"]["name"] == "AwaitingRetry"
    retry_at = dt.datetime.fromisoformat(body["state"]["state_details"]["scheduled_time"])
    assert retry_at >= before + dt.timedelta(seconds=60)
    stored = api.get(f"/flow_runs/{run['id']}").json()
    assert stored["state_name"] == "AwaitingRetry"
    assert stored["end_time"] is None
    # Retrying early waits; the engine is told how long.
    early = propose(api, run["id"], "RUNNING", "Retrying").json()
    assert early["status"] == "WAIT"
    assert early["details"]["delay_seconds"] > 50
    # Once due (the test moves the retry time instead of sleeping), the retry runs and its failure is final.
    due = propose(api, run["id"], "SCHEDULED", "AwaitingRetry", scheduled_time=now() - dt.timedelta(seconds=1))
    assert due.json()["status"] == "ACCEPT"
    drive(api, run["id"], "RUNNING")
    assert api.get(f"/flow_runs/{run['id']}").json()["run_count"] == 2
    final = propose(api, run["id"], "FAILED")
    assert final.status_code == 201
    assert final.json()["status"] == "ACCEPT"
    assert final.json()["state"]["type"] == "FAILED"
    stored = api.get(f"/flow_runs/{run['id']}").json()
    assert stored["end_time"] is not None
    history = [s["name"] for s in api.get(f"/flow_runs/{run['id']}/states").json()]
    assert history == ["Scheduled", "Pending", "Running", "AwaitingRetry", "AwaitingRetry", "Running", "Failed"]


def test_retry_policy_changed_by_update_applies(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    assert api.patch(f"/flow_runs/{run['id']}", json={"empirical_policy": {"retries": 2}}).status_code == 204
    assert propose(api, run["id"], "FAILED").json()["state"]["name"] == "AwaitingRetry"


def test_force_overrides_the_rules(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    drive(api, run["id"], "COMPLETED")
    refused = propose(api, run["id"], "RUNNING")
    assert refused.json()["status"] == "REJECT"
    forced = propose(api, run["id"], "RUNNING", force=True)
    assert forced.status_code == 201
    stored = api.get(f"/flow_runs/{run['id']}").json()
    assert stored["state_type"] == "RUNNING"
    assert stored["end_time"] is None
    assert stored["run_count"] == 2


def test_rerun_of_a_finished_run(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    drive(api, run["id"], "FAILED", "SCHEDULED", "PENDING", "RUNNING", "COMPLETED")
    stored = api.get(f"/flow_runs/{run['id']}").json()
    assert stored["run_count"] == 2
    assert stored["state_version"] == 6


def test_state_fields_are_stored_and_returned(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    body = {
        "state": {
            "type": "COMPLETED",
            "name": "Cached",
            "message": "from cache",
            "data": {"storage_key": "abc", "serializer": "json"},
            "state_details": {"cache_key": "k1"},
        }
    }
    answer = api.post(f"/flow_runs/{run['id']}/set_state", json=body).json()
    assert answer["state"]["name"] == "Cached"
    stored = api.get(f"/flow_runs/{run['id']}").json()["state"]
    assert stored["name"] == "Cached"
    assert stored["message"] == "from cache"
    assert stored["data"] == {"storage_key": "abc", "serializer": "json"}
    assert stored["state_details"]["cache_key"] == "k1"
    last = api.get(f"/flow_runs/{run['id']}/states").json()[-1]
    assert last["data"] == stored["data"]


def test_unknown_run_and_bad_bodies(api: httpx.Client) -> None:
    missing = propose(api, str(uuid.uuid4()), "PENDING")
    assert missing.status_code == 404
    assert missing.json()["detail"]
    run = create_flow_run(api, state=state("SCHEDULED"))
    for body in [
        {},
        {"state": {}},
        {"state": {"type": "LATE"}},
        {"state": {"type": "PENDING"}, "force": "maybe"},
        {"state": {"type": "PENDING", "name": "x" * 101}},
        {"state": {"type": "PENDING"}, "extra": True},
        {"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": "tomorrow"}}},
    ]:
        response = api.post(f"/flow_runs/{run['id']}/set_state", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"]
    assert api.post("/flow_runs/not-a-uuid/set_state", json={"state": {"type": "PENDING"}}).status_code == 422
    assert api.get(f"/flow_runs/{run['id']}").json()["state_version"] == 1


def test_late_proposal_through_the_api(api: httpx.Client) -> None:
    past = now() - dt.timedelta(minutes=5)
    run = create_flow_run(api, state=state("SCHEDULED", scheduled_time=past))
    late = propose(api, run["id"], "SCHEDULED", "Late")
    assert late.status_code == 201, late.text
    scheduled = late.json()["state"]["state_details"]["scheduled_time"]
    assert dt.datetime.fromisoformat(scheduled) == past
    assert propose(api, run["id"], "SCHEDULED", "Late").json()["status"] == "REJECT"
    # A late run can still be claimed.
    assert propose(api, run["id"], "PENDING").json()["status"] == "ACCEPT"


def test_history_stays_in_order_when_a_client_sends_an_old_timestamp(api: httpx.Client) -> None:
    """A client's clock may lag the server's (or a retried request carries its first timestamp): the state history,
    read back ordered by timestamp, must still list the transitions in the order they happened."""
    run = create_flow_run(api, state=state("SCHEDULED"))
    drive(api, run["id"], "PENDING")
    stale = (now() - dt.timedelta(hours=1)).isoformat()
    answer = api.post(f"/flow_runs/{run['id']}/set_state", json={"state": {"type": "RUNNING", "timestamp": stale}})
    assert answer.json()["status"] == "ACCEPT"
    history = api.get(f"/flow_runs/{run['id']}/states").json()
    assert [s["type"] for s in history] == ["SCHEDULED", "PENDING", "RUNNING"]
    stamps = [dt.datetime.fromisoformat(s["timestamp"]) for s in history]
    assert stamps == sorted(stamps)
    # Run time is measured from when the run really entered Running, not from the stale client time.
    drive(api, run["id"], "COMPLETED")
    assert api.get(f"/flow_runs/{run['id']}").json()["total_run_time"] < 600
