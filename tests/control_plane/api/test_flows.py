"""``/api/flows``: get-or-create by name (also under concurrent creation), read, read by name, update, filter, delete.

Runs on SQLite and PostgreSQL through the in-process app (``api`` fixture).
"""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest

from tests.factories import create_flow, create_flow_run, unique_name

pytestmark = pytest.mark.integration


def test_create_is_get_or_create_by_name(api: httpx.Client) -> None:
    first = api.post("/flows/", json={"name": "etl", "tags": ["a"]})
    assert first.status_code == 201, first.text
    second = api.post("/flows/", json={"name": "etl"})
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["tags"] == ["a"]
    body = first.json()
    assert body["name"] == "etl"
    assert {"id", "created", "updated"} <= set(body)


def test_concurrent_creation_of_one_name_yields_one_flow(api: httpx.Client, app: object) -> None:
    from orch.client._embedded import EmbeddedTransport

    name = unique_name()
    barrier = threading.Barrier(8)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def create() -> None:
        with httpx.Client(transport=EmbeddedTransport(app), base_url="http://test/api") as own:
            barrier.wait()
            response = own.post("/flows/", json={"name": name})
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code in (200, 201) for r in answers), [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    listed = api.post("/flows/filter", json={"flows": {"name": {"any_": [name]}}}).json()
    assert len(listed) == 1
    # 201 means "created": exactly one of the callers created the flow.
    assert sorted(r.status_code for r in answers) == [200] * 7 + [201]


def test_read_and_read_by_name(api: httpx.Client) -> None:
    flow = create_flow(api, "reader")
    assert api.get(f"/flows/{flow['id']}").json() == flow
    assert api.get("/flows/name/reader").json() == flow
    missing = api.get(f"/flows/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["detail"]
    assert api.get("/flows/name/nobody").status_code == 404
    assert api.get("/flows/not-a-uuid").status_code == 422


def test_update_tags(api: httpx.Client) -> None:
    flow = create_flow(api, tags=["x"])
    assert api.patch(f"/flows/{flow['id']}", json={"tags": ["y", "z"]}).status_code == 204
    assert api.get(f"/flows/{flow['id']}").json()["tags"] == ["y", "z"]
    assert api.patch(f"/flows/{uuid.uuid4()}", json={"tags": []}).status_code == 404
    assert api.patch(f"/flows/{flow['id']}", json={"name": "renamed"}).status_code == 422


def test_bad_flow_bodies_answer_422_with_detail(api: httpx.Client) -> None:
    bodies = [{}, {"name": ""}, {"name": "a\x00b"}, {"name": "x" * 201}, {"name": "ok", "extra": 1}, {"name": 5}]
    for body in bodies:
        response = api.post("/flows/", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"]
    assert api.post("/flows/filter", json={}).json() == []


def test_filter_by_name_like_and_tags(api: httpx.Client) -> None:
    create_flow(api, "alpha-etl", tags=["etl", "nightly"])
    create_flow(api, "beta-etl", tags=["etl"])
    create_flow(api, "gamma", tags=["nightly"])

    def names(body: dict) -> list[str]:
        response = api.post("/flows/filter", json=body)
        assert response.status_code == 200, response.text
        return [f["name"] for f in response.json()]

    assert names({}) == ["alpha-etl", "beta-etl", "gamma"]
    assert names({"flows": {"name": {"like_": "etl"}}}) == ["alpha-etl", "beta-etl"]
    assert names({"flows": {"name": {"any_": ["gamma", "nope"]}}}) == ["gamma"]
    assert names({"flows": {"tags": {"all_": ["etl", "nightly"]}}}) == ["alpha-etl"]
    assert names({"limit": 2}) == ["alpha-etl", "beta-etl"]
    assert names({"limit": 2, "offset": 2}) == ["gamma"]
    assert api.post("/flows/filter", json={"limit": 0}).status_code == 422


def test_delete_flow_cascades_to_its_runs(api: httpx.Client) -> None:
    flow = create_flow(api)
    run = create_flow_run(api, flow["id"])
    assert api.delete(f"/flows/{flow['id']}").status_code == 204
    assert api.get(f"/flows/{flow['id']}").status_code == 404
    assert api.get(f"/flow_runs/{run['id']}").status_code == 404
    assert api.delete(f"/flows/{flow['id']}").status_code == 404
