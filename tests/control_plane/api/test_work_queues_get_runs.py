"""``POST /api/work_queues/get_runs``: the due runs of several work queues in the order an agent must start them.

Against the real app and database (SQLite and PostgreSQL): queue priority first (lower number first), then the
expected start time; paused queues and concurrency limits as for one queue; unknown queues created as by the
per-queue call; bad input answered 422 with a detail; the route is not shadowed by ``/{name}/get_runs`` or
``/{id}``; and the SDK's call spec for it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _flow(api: Any) -> str:
    return str(api.post("/flows/", json={"name": "wq-flow"}).json()["id"])


def _queue(api: Any, name: str, **body: Any) -> None:
    response = api.post("/work_queues/", json={"name": name, **body})
    assert response.status_code == 201, response.text


def _run(api: Any, flow_id: str, queue: str, seconds_ago: float) -> str:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)
    state = {"type": "SCHEDULED", "state_details": {"scheduled_time": at.isoformat()}}
    response = api.post("/flow_runs/", json={"flow_id": flow_id, "work_queue_name": queue, "state": state})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _get(api: Any, names: list[str], **body: Any) -> list[str]:
    response = api.post("/work_queues/get_runs", json={"work_queue_names": names, **body})
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["runs"]]


def test_runs_come_in_queue_priority_order_then_oldest_first(api: Any) -> None:
    _queue(api, "high", priority=1)
    _queue(api, "low", priority=50)
    _queue(api, "same-a", priority=20)
    _queue(api, "same-b", priority=20)
    flow_id = _flow(api)
    # The low-priority queue's runs have waited longest; they still come after every high-priority run.
    low = [_run(api, flow_id, "low", 600), _run(api, flow_id, "low", 500)]
    high = [_run(api, flow_id, "high", 60), _run(api, flow_id, "high", 30)]
    # Queues of equal priority are merged by expected start time.
    same = [
        _run(api, flow_id, "same-b", 400),
        _run(api, flow_id, "same-a", 300),
        _run(api, flow_id, "same-b", 200),
    ]
    later = _run(api, flow_id, "high", -3600)  # not due: never returned
    names = ["low", "same-a", "high", "same-b"]
    assert _get(api, names, limit=20) == high + same + low
    # The limit cuts the same order: a single free slot goes to the best due run.
    assert _get(api, names, limit=1) == high[:1]
    assert _get(api, names, limit=3) == high + same[:1]
    assert later not in _get(api, names, limit=100)
    # Each name once, however often it is listed.
    assert _get(api, ["low", "low", "high"], limit=20) == high + low


def test_paused_queues_and_concurrency_limits_are_honoured(api: Any) -> None:
    _queue(api, "paused", priority=1)
    _queue(api, "limited", priority=2, concurrency_limit=2)
    _queue(api, "open", priority=3)
    flow_id = _flow(api)
    paused_run = _run(api, flow_id, "paused", 100)
    paused_id = api.get("/work_queues/name/paused").json()["id"]
    assert api.post(f"/work_queues/{paused_id}/pause").status_code == 204
    limited = [_run(api, flow_id, "limited", 90 - i) for i in range(3)]
    open_run = _run(api, flow_id, "open", 200)
    names = ["paused", "limited", "open"]
    # The limited queue gives at most its limit; the paused one nothing.
    assert _get(api, names) == [*limited[:2], open_run]
    # One of the limited queue's runs is claimed (active): one place left in it.
    claim = api.post(f"/flow_runs/{limited[0]}/set_state", json={"state": {"type": "PENDING"}}).json()
    assert claim["status"] == "ACCEPT"
    assert _get(api, names) == [limited[1], open_run]
    # The same answer as the per-queue call gives for each queue.
    assert [r["id"] for r in api.post("/work_queues/limited/get_runs", json={}).json()["runs"]] == [limited[1]]
    assert api.post("/work_queues/paused/get_runs", json={}).json()["runs"] == []
    assert api.post(f"/work_queues/{paused_id}/resume").status_code == 204
    assert _get(api, names)[0] == paused_run


def test_unknown_queues_are_created_and_polls_recorded_like_the_per_queue_call(api: Any) -> None:
    assert api.get("/work_queues/name/brand-new").status_code == 404
    assert _get(api, ["brand-new", "another-one"], wait_seconds=0) == []
    for name in ("brand-new", "another-one"):
        queue = api.get(f"/work_queues/name/{name}").json()
        assert queue["priority"] == 100
        assert queue["last_polled"] is not None


def test_waits_for_a_run_that_becomes_due_in_any_queue(api: Any) -> None:
    _queue(api, "first", priority=1)
    _queue(api, "second", priority=2)
    flow_id = _flow(api)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.6)
    state = {"type": "SCHEDULED", "state_details": {"scheduled_time": soon.isoformat()}}
    run = api.post("/flow_runs/", json={"flow_id": flow_id, "work_queue_name": "second", "state": state}).json()
    assert _get(api, ["first", "second"], wait_seconds=5) == [run["id"]]
    assert dt.datetime.now(dt.UTC) >= soon


@pytest.mark.parametrize(
    "body",
    [
        {"work_queue_names": []},
        {"work_queue_names": ["ok"], "limit": 0},
        {"work_queue_names": ["ok"], "limit": -3},
        {"work_queue_names": ["ok"], "limit": 101},
        {"work_queue_names": ["ok"], "wait_seconds": 21},
        {"work_queue_names": ["bad name!"]},
        {"work_queue_names": [""]},
        {"work_queue_names": ["x" * 61]},
        {"work_queue_names": "default"},
        {"work_queue_names": [f"q{i}" for i in range(101)]},
        {"work_queue_names": ["ok"], "unknown": 1},
        {"limit": 5},
        None,
    ],
)
def test_bad_input_is_a_422_with_a_detail(api: Any, body: Any) -> None:
    response = api.post("/work_queues/get_runs", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    # Nothing was created by a refused call.
    assert api.post("/work_queues/filter", json={}).json() == []


def test_the_route_is_not_shadowed_by_the_per_queue_routes(api: Any) -> None:
    flow_id = _flow(api)
    # A queue may itself be called "get_runs": its per-queue call still reaches it.
    run = _run(api, flow_id, "get_runs", 10)
    assert [r["id"] for r in api.post("/work_queues/get_runs/get_runs", json={}).json()["runs"]] == [run]
    assert _get(api, ["get_runs"]) == [run]
    # The multi-queue route is not the read-by-id route: without a body it is a validation error, not a 405.
    assert api.post("/work_queues/get_runs").status_code == 422


def test_the_sdk_call_spec(api: Any) -> None:
    from orch.client import _api
    from orch.control_plane.schemas.work_queues import GetRunsResponse, WorkQueuesGetRunsRequest

    _queue(api, "spec-high", priority=1)
    _queue(api, "spec-low", priority=2)
    flow_id = _flow(api)
    low = _run(api, flow_id, "spec-low", 100)
    high = _run(api, flow_id, "spec-high", 10)
    call = _api.get_work_queues_runs(WorkQueuesGetRunsRequest(work_queue_names=["spec-low", "spec-high"], limit=5))
    assert (call.method, call.path) == ("POST", "/work_queues/get_runs")
    response = api.request(call.method, call.path, json=call.json)
    assert response.status_code == 200, response.text
    answer = call.parse(response.json())
    assert isinstance(answer, GetRunsResponse)
    assert [str(r.id) for r in answer.runs] == [high, low]
    assert [r.work_queue_name for r in answer.runs] == ["spec-high", "spec-low"]
