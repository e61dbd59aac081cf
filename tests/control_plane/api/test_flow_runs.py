"""``/api/flow_runs``: create (with and without a state, idempotency keys, validation), read, update, delete with
cascades, heartbeat and state history. ``set_state`` has its own module (``test_set_state.py``).

Runs on SQLite and PostgreSQL through the in-process app (``api`` fixture).
"""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import pytest

from tests.factories import (
    create_flow,
    create_flow_run,
    create_logs,
    drive,
    log_lines,
    record_task_runs,
    state,
    task_run_record,
)

pytestmark = pytest.mark.integration


def test_create_without_state(api: httpx.Client) -> None:
    flow = create_flow(api)
    response = api.post(
        "/flow_runs/",
        json={"flow_id": flow["id"], "parameters": {"x": 1, "nested": {"y": [1, 2]}}, "tags": ["t1", "t2"]},
    )
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["flow_id"] == flow["id"]
    assert run["state"] is None
    assert run["state_type"] is None
    assert run["state_version"] == 0
    assert run["run_count"] == 0
    assert run["parameters"] == {"x": 1, "nested": {"y": [1, 2]}}
    assert run["tags"] == ["t1", "t2"]
    assert run["name"], "a generated name"
    assert run["expected_start_time"] is not None
    assert api.get(f"/flow_runs/{run['id']}/states").json() == []


def test_create_with_a_scheduled_state(api: httpx.Client) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    run = create_flow_run(api, state=state("SCHEDULED", scheduled_time=when), name="nightly-1")
    assert run["name"] == "nightly-1"
    assert run["state"]["type"] == "SCHEDULED"
    assert run["state"]["name"] == "Scheduled"
    assert run["state_version"] == 1
    assert dt.datetime.fromisoformat(run["expected_start_time"]) == when
    history = api.get(f"/flow_runs/{run['id']}/states").json()
    assert [s["type"] for s in history] == ["SCHEDULED"]


def test_create_with_a_client_chosen_id(api: httpx.Client) -> None:
    run_id = str(uuid.uuid4())
    run = create_flow_run(api, id=run_id)
    assert run["id"] == run_id
    again = api.post("/flow_runs/", json={"flow_id": run["flow_id"], "id": run_id})
    assert again.status_code == 409, again.text
    assert again.json()["detail"]


def test_create_with_a_refused_initial_state_is_422(api: httpx.Client) -> None:
    flow = create_flow(api)
    response = api.post("/flow_runs/", json={"flow_id": flow["id"], "state": {"type": "COMPLETED"}})
    assert response.status_code == 422, response.text
    assert "refused" in response.json()["detail"]
    assert api.post("/flow_runs/filter", json={}).json() == []


def test_idempotency_key_returns_the_existing_run(api: httpx.Client) -> None:
    flow = create_flow(api)
    body = {"flow_id": flow["id"], "idempotency_key": "deploy-1@2026-11-22T00:00", "state": {"type": "SCHEDULED"}}
    first = api.post("/flow_runs/", json=body)
    assert first.status_code == 201, first.text
    second = api.post("/flow_runs/", json={**body, "parameters": {"different": True}})
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["parameters"] == {}
    # The key is per flow: another flow may use it.
    other = api.post("/flow_runs/", json={**body, "flow_id": create_flow(api)["id"]})
    assert other.status_code == 201
    assert api.post("/flow_runs/count", json={}).json() == 2


def test_unknown_flow_is_404(api: httpx.Client) -> None:
    response = api.post("/flow_runs/", json={"flow_id": str(uuid.uuid4())})
    assert response.status_code == 404
    assert "does not exist" in response.json()["detail"]


def test_unknown_deployment_is_404(api: httpx.Client) -> None:
    flow = create_flow(api)
    deployment_id = str(uuid.uuid4())
    response = api.post("/flow_runs/", json={"flow_id": flow["id"], "deployment_id": deployment_id})
    assert response.status_code == 404, response.text
    assert deployment_id in response.json()["detail"]
    assert api.post("/flow_runs/count", json={}).json() == 0


BAD_BODIES = [
    ({"flow_id": "nope"}, "flow_id"),
    ({"name": ""}, "name"),
    ({"tags": "not-a-list"}, "tags"),
    ({"tags": ["a\x00"]}, "tags"),
    ({"state": {"type": "WHATEVER"}}, "state"),
    ({"empirical_policy": {"retries": -1}}, "empirical_policy"),
    ({"empirical_policy": {"retries": 10**6}}, "empirical_policy"),
    ({"parameters": [1, 2]}, "parameters"),
    ({"unexpected": 1}, "unexpected"),
    ({"state": {"type": "SCHEDULED", "surprise": 1}}, "state"),
]


def test_bad_bodies_are_422_with_a_detail_naming_the_field(api: httpx.Client) -> None:
    flow = create_flow(api)
    cases = [({}, "flow_id", {}), *[({"flow_id": flow["id"], **body}, field, body) for body, field in BAD_BODIES]]
    for payload, field, body in cases:
        response = api.post("/flow_runs/", json=payload)
        assert response.status_code == 422, (body, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, list)
        assert detail
        assert any(field in [str(p) for p in err["loc"]] for err in detail), (body, detail)
    assert api.post("/flow_runs/count", json={}).json() == 0


def test_not_json_is_422(api: httpx.Client) -> None:
    response = api.post("/flow_runs/", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_read(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("SCHEDULED"))
    assert api.get(f"/flow_runs/{run['id']}").json() == run
    missing = api.get(f"/flow_runs/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert "not found" in missing.json()["detail"]
    assert api.get("/flow_runs/123").status_code == 422
    assert api.get("/flow_runs/..%2f..%2fetc").status_code in (404, 422)


def test_update(api: httpx.Client) -> None:
    run = create_flow_run(api, tags=["a"])
    response = api.patch(
        f"/flow_runs/{run['id']}",
        json={
            "name": "renamed",
            "parameters": {"p": 2},
            "tags": ["b"],
            "empirical_policy": {"retries": 3, "retry_delay": 5},
            "infrastructure_pid": "host:123",
        },
    )
    assert response.status_code == 204, response.text
    updated = api.get(f"/flow_runs/{run['id']}").json()
    assert updated["name"] == "renamed"
    assert updated["parameters"] == {"p": 2}
    assert updated["tags"] == ["b"]
    assert updated["empirical_policy"] == {"retries": 3, "retry_delay": 5}
    assert updated["infrastructure_pid"] == "host:123"
    assert api.patch(f"/flow_runs/{uuid.uuid4()}", json={"name": "x"}).status_code == 404
    assert api.patch(f"/flow_runs/{run['id']}", json={"state_type": "COMPLETED"}).status_code == 422


def test_update_does_not_touch_the_state(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("SCHEDULED"))
    api.patch(f"/flow_runs/{run['id']}", json={"name": "x"})
    after = api.get(f"/flow_runs/{run['id']}").json()
    assert after["state"] == run["state"]
    assert after["state_version"] == 1


def test_delete_cascades_to_task_runs_logs_and_states(api: httpx.Client, database: object) -> None:
    import sqlalchemy as sa

    from orch.control_plane.db import orm

    run = create_flow_run(api, state=state("SCHEDULED"))
    drive(api, run["id"], "PENDING", "RUNNING")
    task_id = str(uuid.uuid4())
    record_task_runs(api, [task_run_record(run["id"], id=task_id, states=[state("RUNNING"), state("COMPLETED")])])
    create_logs(api, log_lines(run["id"], 5))
    keep = create_flow_run(api, state=state("SCHEDULED"))
    create_logs(api, log_lines(keep["id"], 2))

    assert api.delete(f"/flow_runs/{run['id']}").status_code == 204
    assert api.get(f"/flow_runs/{run['id']}").status_code == 404
    assert api.get(f"/task_runs/{task_id}").status_code == 404
    assert api.delete(f"/flow_runs/{run['id']}").status_code == 404
    with database.session(write=False) as session:  # type: ignore[attr-defined]
        for table, column in [
            (orm.FlowRunState, orm.FlowRunState.flow_run_id),
            (orm.TaskRun, orm.TaskRun.flow_run_id),
            (orm.Log, orm.Log.flow_run_id),
        ]:
            count = session.execute(sa.select(sa.func.count()).select_from(table).where(column == uuid.UUID(run["id"])))
            assert count.scalar_one() == 0, table
    # The other run keeps everything.
    assert len(api.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [keep["id"]]}}}).json()) == 2
    assert len(api.get(f"/flow_runs/{keep['id']}/states").json()) == 1


def test_heartbeat(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("SCHEDULED"))
    drive(api, run["id"], "PENDING", "RUNNING")
    started = api.get(f"/flow_runs/{run['id']}").json()["heartbeat_time"]
    beat = api.post(f"/flow_runs/{run['id']}/heartbeat")
    assert beat.status_code == 200, beat.text
    assert beat.json() == {"state_type": "RUNNING", "state_name": "Running"}
    after = api.get(f"/flow_runs/{run['id']}").json()["heartbeat_time"]
    assert dt.datetime.fromisoformat(after) >= dt.datetime.fromisoformat(started)
    assert api.post(f"/flow_runs/{uuid.uuid4()}/heartbeat").status_code == 404


def test_heartbeat_tells_the_engine_about_a_cancellation(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    drive(api, run["id"], "CANCELLING")
    assert api.post(f"/flow_runs/{run['id']}/heartbeat").json()["state_type"] == "CANCELLING"


def test_state_history_in_order(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("SCHEDULED"))
    drive(api, run["id"], "PENDING", "RUNNING", "COMPLETED")
    history = api.get(f"/flow_runs/{run['id']}/states")
    assert history.status_code == 200
    states = history.json()
    assert [s["type"] for s in states] == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]
    stamps = [dt.datetime.fromisoformat(s["timestamp"]) for s in states]
    assert stamps == sorted(stamps)
    assert all(s["id"] for s in states)
    assert api.get(f"/flow_runs/{uuid.uuid4()}/states").status_code == 404


def test_run_fields_after_a_full_lifecycle(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("SCHEDULED"))
    drive(api, run["id"], "PENDING", "RUNNING", "COMPLETED")
    done = api.get(f"/flow_runs/{run['id']}").json()
    assert done["state_type"] == "COMPLETED"
    assert done["state_name"] == "Completed"
    assert done["state_version"] == 4
    assert done["run_count"] == 1
    assert done["start_time"] is not None
    assert done["end_time"] is not None
    assert dt.datetime.fromisoformat(done["end_time"]) >= dt.datetime.fromisoformat(done["start_time"])
    assert done["total_run_time"] >= 0
