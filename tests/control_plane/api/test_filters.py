"""``/api/flow_runs/filter``, ``/paginate`` and ``/count``: every filter, and keyset pagination that yields each
run exactly once, in order, for every sort — through ``next_cursor`` and through the ``X-Orch-Next-Cursor`` header.

Runs on SQLite and PostgreSQL. The 250 runs of the pagination test are created through the model layer in one
transaction (creating them one request at a time would only slow the test down; the walk itself is over the API).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.factories import create_flow, create_flow_run, drive, propose, state

pytestmark = pytest.mark.integration

BASE = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def ids(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {r["id"] for r in response.json()}


def run_filter(api: httpx.Client, flow_runs: dict[str, Any] | None = None, **body: Any) -> set[str]:
    payload = dict(body)
    if flow_runs is not None:
        payload["flow_runs"] = flow_runs
    found = ids(api.post("/flow_runs/filter", json=payload))
    count = api.post("/flow_runs/count", json=payload)
    assert count.status_code == 200, count.text
    assert count.json() == len(found)
    return found


@pytest.fixture
def runs(api: httpx.Client, database: Any) -> dict[str, dict[str, Any]]:
    """A small zoo of runs, one per interesting filter value."""
    from orch.control_plane.db import orm

    etl = create_flow(api, "etl")
    report = create_flow(api, "report")
    with database.session() as session:
        deployment = orm.Deployment(flow_id=uuid.UUID(etl["id"]), name="nightly")
        session.add(deployment)
        session.flush()
        deployment_id = str(deployment.id)
    parent = str(uuid.uuid4())
    zoo = {
        "early": create_flow_run(
            api, etl["id"], state=state("SCHEDULED", scheduled_time=BASE), tags=["a", "b"], name="early-run"
        ),
        "late": create_flow_run(
            api,
            etl["id"],
            state=state("SCHEDULED", scheduled_time=BASE + dt.timedelta(hours=2)),
            tags=["b"],
            deployment_id=deployment_id,
            work_queue_name="gpu",
        ),
        "running": create_flow_run(api, report["id"], state=state("RUNNING"), tags=["c"]),
        "failed": create_flow_run(api, report["id"], state=state("RUNNING"), parent_task_run_id=parent),
        "no-state": create_flow_run(api, report["id"]),
    }
    drive(api, zoo["failed"]["id"], "FAILED")
    overdue = create_flow_run(
        api, etl["id"], state=state("SCHEDULED", scheduled_time=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    )
    assert propose(api, overdue["id"], "SCHEDULED", "Late").json()["status"] == "ACCEPT"
    zoo["overdue"] = overdue
    return {k: {**v, "deployment_id": deployment_id, "parent": parent} for k, v in zoo.items()}


def test_every_flow_run_filter(api: httpx.Client, runs: dict[str, dict[str, Any]]) -> None:
    id_of = {k: v["id"] for k, v in runs.items()}

    def of(*names: str) -> set[str]:
        return {id_of[n] for n in names}

    assert run_filter(api) == set(id_of.values())
    # state type / name
    assert run_filter(api, {"state": {"type": {"any_": ["SCHEDULED"]}}}) == of("early", "late", "overdue")
    assert run_filter(api, {"state": {"type": {"any_": ["FAILED", "RUNNING"]}}}) == of("running", "failed")
    assert run_filter(api, {"state": {"type": {"not_any_": ["SCHEDULED"]}}}) == of("running", "failed")
    assert run_filter(api, {"state": {"name": {"any_": ["Late"]}}}) == of("overdue")
    assert run_filter(api, {"state": {"type": {"any_": ["SCHEDULED"]}, "name": {"any_": ["Scheduled"]}}}) == of(
        "early", "late"
    )
    assert run_filter(api, {"state": {"type": {"any_": []}}}) == set()
    # flow name / flow id
    assert run_filter(api, flows={"name": {"any_": ["report"]}}) == of("running", "failed", "no-state")
    assert run_filter(api, {"flow_id": {"any_": [runs["early"]["flow_id"]]}}) == of("early", "late", "overdue")
    # deployment id
    assert run_filter(api, {"deployment_id": {"is_null_": False}}) == of("late")
    assert run_filter(api, {"deployment_id": {"is_null_": True}}) == set(id_of.values()) - of("late")
    assert run_filter(api, {"deployment_id": {"any_": [runs["late"]["deployment_id"]]}}) == of("late")
    assert run_filter(api, deployments={"name": {"any_": ["nightly"]}}) == of("late")
    # tags
    assert run_filter(api, {"tags": {"all_": ["a", "b"]}}) == of("early")
    assert run_filter(api, {"tags": {"all_": ["b"]}}) == of("early", "late")
    assert run_filter(api, {"tags": {"any_": ["a", "c"]}}) == of("early", "running")
    assert run_filter(api, {"tags": {"any_": ["zzz"]}}) == set()
    # expected start time ranges
    window = {
        "after_": (BASE - dt.timedelta(minutes=1)).isoformat(),
        "before_": (BASE + dt.timedelta(hours=1)).isoformat(),
    }
    assert run_filter(api, {"expected_start_time": window}) == of("early")
    assert run_filter(api, {"expected_start_time": {"after_": BASE.isoformat()}}) >= of("early", "late")
    # Runs created without a scheduled state are expected to start when they were created (before BASE).
    assert run_filter(api, {"expected_start_time": {"before_": (BASE - dt.timedelta(days=1)).isoformat()}}) == of(
        "overdue", "running", "failed", "no-state"
    )
    # other fields
    assert run_filter(api, {"parent_task_run_id": {"any_": [runs["failed"]["parent"]]}}) == of("failed")
    assert run_filter(api, {"parent_task_run_id": {"is_null_": False}}) == of("failed")
    assert run_filter(api, {"work_queue_name": {"any_": ["gpu"]}}) == of("late")
    assert run_filter(api, {"name": {"any_": ["early-run"]}}) == of("early")
    assert run_filter(api, {"name": {"like_": "ARLY-R"}}) == of("early")
    assert run_filter(api, {"id": {"any_": [id_of["running"], id_of["failed"]]}}) == of("running", "failed")
    assert run_filter(api, {"start_time": {"is_null_": False}}) == of("running", "failed")
    assert run_filter(api, {"end_time": {"is_null_": False}}) == of("failed")
    # combined (AND)
    assert run_filter(api, {"state": {"type": {"any_": ["SCHEDULED"]}}, "tags": {"all_": ["b"]}}) == of("early", "late")


def test_filter_without_body_and_bad_filters(api: httpx.Client) -> None:
    create_flow_run(api)
    assert len(api.post("/flow_runs/filter").json()) == 1
    assert api.post("/flow_runs/count").json() == 1
    for body in [
        {"limit": 0},
        {"limit": 1001},
        {"offset": -1},
        {"sort": "SIDEWAYS"},
        {"flow_runs": {"state": {"type": {"any_": ["LATE"]}}}},
        {"flow_runs": {"id": {"any_": ["nope"]}}},
        {"flow_runs": {"surprise": {}}},
        {"flow_runs": {"expected_start_time": {"after_": "yesterday"}}},
    ]:
        for path in ("/flow_runs/filter", "/flow_runs/paginate", "/flow_runs/count"):
            response = api.post(path, json=body)
            assert response.status_code == 422, (path, body, response.text)
            assert response.json()["detail"]


# -- keyset pagination ----------------------------------------------------------------------------------------------

SORTS = {
    "EXPECTED_START_TIME_DESC": (lambda r: (r["expected_start_time"], uuid.UUID(r["id"])), True),
    "EXPECTED_START_TIME_ASC": (lambda r: (r["expected_start_time"], uuid.UUID(r["id"])), False),
    "CREATED_DESC": (lambda r: (r["created"], uuid.UUID(r["id"])), True),
    "CREATED_ASC": (lambda r: (r["created"], uuid.UUID(r["id"])), False),
    "UPDATED_DESC": (lambda r: (r["updated"], uuid.UUID(r["id"])), True),
    "NAME_ASC": (lambda r: (r["name"], uuid.UUID(r["id"])), False),
    "NAME_DESC": (lambda r: (r["name"], uuid.UUID(r["id"])), True),
}
NAMES = ["alpha", "bravo", "charlie", "delta", "echo"]


@pytest.fixture
def many_runs(api: httpx.Client, database: Any) -> list[dict[str, Any]]:
    """250 runs with many ties (5 names, 10 scheduled times) so that the id tie-breaker matters."""
    from orch.control_plane.models import flow_runs
    from orch.control_plane.schemas.flow_runs import FlowRunCreate
    from orch.control_plane.schemas.states import StateCreate, StateDetails, StateType

    flow = create_flow(api, "paged")
    with database.session() as session:
        for i in range(250):
            flow_runs.create(
                session,
                FlowRunCreate(
                    flow_id=flow["id"],
                    name=NAMES[i % len(NAMES)],
                    state=StateCreate(
                        type=StateType.SCHEDULED,
                        state_details=StateDetails(scheduled_time=BASE + dt.timedelta(minutes=i % 10)),
                    ),
                ),
            )
    everything = api.post("/flow_runs/filter", json={"limit": 1000}).json()
    assert len(everything) == 250
    for r in everything:
        for key in ("expected_start_time", "created", "updated"):
            r[key] = dt.datetime.fromisoformat(r[key])
    return everything


def expected_order(runs: list[dict[str, Any]], sort: str) -> list[str]:
    key, descending = SORTS[sort]
    return [r["id"] for r in sorted(runs, key=key, reverse=descending)]


@pytest.mark.slow
def test_keyset_pages_yield_every_run_once_in_order(api: httpx.Client, many_runs: list[dict[str, Any]]) -> None:
    for sort in SORTS:
        expected = expected_order(many_runs, sort)
        # via /paginate and next_cursor
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            response = api.post("/flow_runs/paginate", json={"sort": sort, "limit": 100, "cursor": cursor})
            assert response.status_code == 200, response.text
            page = response.json()
            seen.extend(r["id"] for r in page["results"])
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 3, sort
        assert seen == expected, sort
        # via /filter and the X-Orch-Next-Cursor header
        seen = []
        cursor = None
        while True:
            response = api.post("/flow_runs/filter", json={"sort": sort, "limit": 100, "cursor": cursor})
            assert response.status_code == 200, response.text
            seen.extend(r["id"] for r in response.json())
            cursor = response.headers.get("X-Orch-Next-Cursor")
            if cursor is None:
                break
        assert seen == expected, sort


def test_keyset_pages_with_a_filter_and_exact_page_boundary(api: httpx.Client) -> None:
    flow = create_flow(api)
    made = {create_flow_run(api, flow["id"], tags=["x"])["id"] for _ in range(4)}
    create_flow_run(api, flow["id"], tags=["y"])
    body: dict[str, Any] = {"flow_runs": {"tags": {"all_": ["x"]}}, "limit": 2}
    first = api.post("/flow_runs/paginate", json=body).json()
    assert len(first["results"]) == 2
    assert first["next_cursor"]
    second = api.post("/flow_runs/paginate", json={**body, "cursor": first["next_cursor"]}).json()
    assert len(second["results"]) == 2
    # Exactly at the end: no cursor, not an empty extra page.
    assert second["next_cursor"] is None
    assert {r["id"] for r in first["results"] + second["results"]} == made


def _b64(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def test_invalid_cursors_are_422(api: httpx.Client) -> None:
    flow = create_flow(api)
    for i in range(3):
        create_flow_run(api, flow["id"], name=f"r{i}")
    name_cursor = api.post("/flow_runs/paginate", json={"sort": "NAME_ASC", "limit": 1}).json()["next_cursor"]
    assert name_cursor
    cursors = {
        "garbage": "!!!not-a-cursor!!!",
        "not-json": base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "wrong-length": _b64([1, 2, 3]),
        "not-a-list": _b64(5),
        "bad-time": _b64([{"t": "yesterday"}, {"u": str(uuid.uuid4())}]),
        "bad-uuid": _b64([{"t": BASE.isoformat()}, {"u": "nope"}]),
        "numbers": _b64([1, 2]),
        "strings": _b64(["a", "b"]),
        "naive-time": _b64([{"t": "2030-01-01T00:00:00"}, {"u": str(uuid.uuid4())}]),
        "other-sort": name_cursor,
    }
    wrong = []
    for label, cursor in cursors.items():
        for path in ("/flow_runs/paginate", "/flow_runs/filter"):
            response = api.post(path, json={"sort": "EXPECTED_START_TIME_DESC", "cursor": cursor})
            if response.status_code != 422 or "detail" not in response.json():
                wrong.append((label, path, response.status_code))
    assert wrong == []
