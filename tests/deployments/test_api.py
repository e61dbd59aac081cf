"""The deployments API on the in-process app, on SQLite and PostgreSQL: upsert, read, filter, patch, delete,
pause/resume, schedules CRUD, upcoming times and create_flow_run with parameter validation."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration

SCHEMA = {
    "title": "Parameters",
    "type": "object",
    "properties": {
        "who": {"title": "who", "type": "string", "default": "world"},
        "n": {"title": "n", "type": "integer", "default": 1},
    },
}


def _deploy(api: Any, name: str = "nightly", **extra: Any) -> dict[str, Any]:
    flow = api.post("/flows/", json={"name": "hello"}).json()
    body = {
        "flow_id": flow["id"],
        "name": name,
        "entrypoint": "flows.py:hello",
        "parameters": {"who": "world"},
        "parameter_schema": SCHEMA,
        "work_queue_name": "default",
        "tags": ["team-a"],
        "retries": 2,
        "retry_delay": 5,
        "schedules": [{"schedule": {"cron": "0 9 * * *", "timezone": "Europe/Paris"}}],
        **extra,
    }
    response = api.post("/deployments/", json=body)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def test_upsert_by_flow_and_name_keeps_id_and_unchanged_schedules(api: Any) -> None:
    first = _deploy(api)
    assert first["flow_name"] == "hello"
    assert first["schedules"][0]["schedule"] == {"cron": "0 9 * * *", "timezone": "Europe/Paris", "day_or": True}
    again = _deploy(api, description="second")
    assert again["id"] == first["id"]
    assert again["description"] == "second"
    assert again["schedules"][0]["id"] == first["schedules"][0]["id"]
    changed = _deploy(api, schedules=[{"schedule": {"interval": 3600}, "active": False}])
    assert [s["schedule"]["interval"] for s in changed["schedules"]] == [3600]
    assert changed["schedules"][0]["active"] is False


def test_read_by_name_filter_patch_delete(api: Any) -> None:
    dep = _deploy(api)
    by_name = api.get("/deployments/name/hello/nightly")
    assert by_name.status_code == 200
    assert by_name.json()["id"] == dep["id"]
    assert api.get("/deployments/name/hello/nope").status_code == 404
    _deploy(api, name="hourly")
    listed = api.post("/deployments/filter", json={"deployments": {"name": {"any_": ["hourly"]}}}).json()
    assert [d["name"] for d in listed] == ["hourly"]
    assert len(api.post("/deployments/filter", json={"flows": {"name": {"any_": ["hello"]}}}).json()) == 2
    assert api.patch(f"/deployments/{dep['id']}", json={"version": "2"}).status_code == 204
    assert api.get(f"/deployments/{dep['id']}").json()["version"] == "2"
    assert api.delete(f"/deployments/{dep['id']}").status_code == 204
    assert api.get(f"/deployments/{dep['id']}").status_code == 404
    assert api.delete(f"/deployments/{dep['id']}").status_code == 404


def test_bad_deployments_are_refused_with_422(api: Any) -> None:
    flow = api.post("/flows/", json={"name": "hello"}).json()
    bad_cron = api.post(
        "/deployments/", json={"flow_id": flow["id"], "name": "x", "schedules": [{"schedule": {"cron": "* *"}}]}
    )
    assert bad_cron.status_code == 422
    assert "cron must have 5 fields" in bad_cron.text
    bad_infra = api.post("/deployments/", json={"flow_id": flow["id"], "name": "x", "infra_type": "k8s"})
    assert bad_infra.status_code == 422
    bad_entry = api.post("/deployments/", json={"flow_id": flow["id"], "name": "x", "entrypoint": "no-colon"})
    assert bad_entry.status_code == 422
    bad_default = api.post(
        "/deployments/",
        json={"flow_id": flow["id"], "name": "x", "parameter_schema": SCHEMA, "parameters": {"who": 3}},
    )
    assert bad_default.status_code == 422
    assert "who: Input should be a valid string" in bad_default.text
    missing_flow = api.post("/deployments/", json={"flow_id": "00000000-0000-0000-0000-000000000000", "name": "x"})
    assert missing_flow.status_code == 404


def test_create_flow_run_merges_defaults_and_validates(api: Any) -> None:
    dep = _deploy(api)
    response = api.post(f"/deployments/{dep['id']}/create_flow_run", json={"parameters": {"n": 3}})
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["state"]["type"] == "SCHEDULED"
    assert run["state"]["name"] == "Scheduled"
    assert run["parameters"] == {"who": "world", "n": 3}
    assert run["deployment_id"] == dep["id"]
    assert run["work_queue_name"] == "default"
    assert run["tags"] == ["team-a"]
    assert run["empirical_policy"] == {"retries": 2, "retry_delay": 5.0}

    wrong_type = api.post(f"/deployments/{dep['id']}/create_flow_run", json={"parameters": {"who": 1}})
    assert wrong_type.status_code == 422
    assert wrong_type.json()["detail"] == "Invalid parameters: who: Input should be a valid string"
    unknown = api.post(f"/deployments/{dep['id']}/create_flow_run", json={"parameters": {"whom": "x"}})
    assert unknown.status_code == 422
    assert "Unknown parameter 'whom'" in unknown.json()["detail"]
    missing = api.post("/deployments/00000000-0000-0000-0000-000000000000/create_flow_run", json={})
    assert missing.status_code == 404


def test_create_flow_run_at_a_given_time(api: Any) -> None:
    dep = _deploy(api)
    run = api.post(f"/deployments/{dep['id']}/create_flow_run", json={"scheduled_time": "2030-01-01T00:00:00Z"}).json()
    assert run["expected_start_time"].startswith("2030-01-01T00:00:00")


def test_schedules_crud_and_upcoming(api: Any) -> None:
    dep = _deploy(api, schedules=[])
    assert api.get(f"/deployments/{dep['id']}/upcoming").json() == []
    created = api.post(
        f"/deployments/{dep['id']}/schedules",
        json=[{"schedule": {"cron": "*/15 * * * *"}}, {"schedule": {"interval": 3600}, "active": False}],
    )
    assert created.status_code == 201, created.text
    first, second = created.json()
    listed = api.get(f"/deployments/{dep['id']}/schedules").json()
    assert {s["id"] for s in listed} == {first["id"], second["id"]}
    upcoming = api.get(f"/deployments/{dep['id']}/upcoming", params={"n": 5}).json()
    assert len(upcoming) == 5
    assert all(u["schedule_id"] == first["id"] for u in upcoming)  # the inactive schedule does not count
    assert all(u["scheduled_time"][14:16] in ("00", "15", "30", "45") for u in upcoming)
    patched = api.patch(f"/deployments/{dep['id']}/schedules/{first['id']}", json={"active": False})
    assert patched.status_code == 204
    assert api.get(f"/deployments/{dep['id']}/schedules/{first['id']}").json()["active"] is False
    assert api.get(f"/deployments/{dep['id']}/upcoming").json() == []
    assert api.delete(f"/deployments/{dep['id']}/schedules/{second['id']}").status_code == 204
    assert api.get(f"/deployments/{dep['id']}/schedules/{second['id']}").status_code == 404
    bad = api.patch(f"/deployments/{dep['id']}/schedules/{first['id']}", json={"schedule": {"cron": "61 * * * *"}})
    assert bad.status_code == 422


def test_pause_resume_and_prefect_aliases(api: Any) -> None:
    dep = _deploy(api)
    for path, paused in (
        ("pause", True),
        ("resume", False),
        ("set_schedule_inactive", True),
        ("set_schedule_active", False),
    ):
        assert api.post(f"/deployments/{dep['id']}/{path}").status_code == 204
        assert api.get(f"/deployments/{dep['id']}").json()["paused"] is paused
    api.post(f"/deployments/{dep['id']}/pause")
    assert api.get(f"/deployments/{dep['id']}/upcoming").json() == []
    # Re-deploying does not resume a deployment someone paused.
    assert _deploy(api)["paused"] is True
