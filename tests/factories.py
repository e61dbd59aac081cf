"""Test factories: create flows, flow runs, task runs and logs through the real HTTP API.

Every helper takes the raw ``httpx.Client`` of the ``api`` fixture (base URL ending in ``/api``), asserts that the
API accepted the request, and returns the JSON object it answered. Going through the API (not the ORM) keeps the
tests honest: what a factory creates is what a client could have created::

    flow = create_flow(api)
    run = create_flow_run(api, flow["id"], state=state("SCHEDULED"))
    answer = propose(api, run["id"], "PENDING").json()
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from typing import Any

import httpx

_counter = itertools.count()


def unique_name(prefix: str = "flow") -> str:
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


def iso(value: dt.datetime) -> str:
    return value.isoformat()


def state(
    type_: str,
    name: str | None = None,
    *,
    scheduled_time: dt.datetime | None = None,
    message: str | None = None,
    **details: Any,
) -> dict[str, Any]:
    """The JSON of a proposed state (``StateCreate``)."""
    body: dict[str, Any] = {"type": type_}
    if name is not None:
        body["name"] = name
    if message is not None:
        body["message"] = message
    state_details = dict(details)
    if scheduled_time is not None:
        state_details["scheduled_time"] = iso(scheduled_time)
    if state_details:
        body["state_details"] = state_details
    return body


def create_flow(api: httpx.Client, name: str | None = None, tags: list[str] | None = None) -> dict[str, Any]:
    response = api.post("/flows/", json={"name": name or unique_name(), "tags": tags or []})
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


def create_flow_run(
    api: httpx.Client, flow_id: str | None = None, *, state: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    """A flow run (of a new flow unless ``flow_id`` is given); ``fields`` are ``FlowRunCreate`` fields."""
    if flow_id is None:
        flow_id = create_flow(api)["id"]
    body: dict[str, Any] = {"flow_id": flow_id, **fields}
    if state is not None:
        body["state"] = state
    response = api.post("/flow_runs/", json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


def propose(
    api: httpx.Client,
    run_id: str,
    type_: str,
    name: str | None = None,
    *,
    force: bool = False,
    scheduled_time: dt.datetime | None = None,
    **details: Any,
) -> httpx.Response:
    """Propose a state for a flow run; returns the raw response (status 201 on ACCEPT, 200 otherwise)."""
    body = {"state": state(type_, name, scheduled_time=scheduled_time, **details), "force": force}
    return api.post(f"/flow_runs/{run_id}/set_state", json=body)


def drive(api: httpx.Client, run_id: str, *types: str) -> None:
    """Walk a run through states that must each be accepted (e.g. ``"PENDING", "RUNNING", "COMPLETED"``)."""
    for type_ in types:
        response = propose(api, run_id, type_)
        assert response.status_code == 201, f"{type_}: {response.text}"
        assert response.json()["status"] == "ACCEPT", f"{type_}: {response.text}"


def task_run_record(
    flow_run_id: str | None,
    *,
    id: str | None = None,
    task_key: str = "task",
    name: str | None = None,
    states: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One entry of ``POST /task_runs/batch``."""
    return {
        "id": id or str(uuid.uuid4()),
        "flow_run_id": flow_run_id,
        "task_key": task_key,
        "name": name or task_key,
        "states": states or [],
        **fields,
    }


def record_task_runs(api: httpx.Client, records: list[dict[str, Any]]) -> dict[str, Any]:
    response = api.post("/task_runs/batch", json={"task_runs": records})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def log_lines(
    flow_run_id: str | None,
    count: int,
    *,
    level: int = 20,
    start: dt.datetime | None = None,
    step: dt.timedelta = dt.timedelta(milliseconds=1),
    task_run_id: str | None = None,
    prefix: str = "line",
) -> list[dict[str, Any]]:
    """``count`` log lines with increasing timestamps (JSON of ``LogCreate``)."""
    start = start or dt.datetime.now(dt.UTC)
    return [
        {
            "name": "tests",
            "level": level,
            "message": f"{prefix} {i}",
            "timestamp": iso(start + i * step),
            "flow_run_id": flow_run_id,
            "task_run_id": task_run_id,
        }
        for i in range(count)
    ]


def create_logs(api: httpx.Client, logs: list[dict[str, Any]]) -> int:
    response = api.post("/logs/", json=logs)
    assert response.status_code == 201, response.text
    return int(response.json()["created"])
