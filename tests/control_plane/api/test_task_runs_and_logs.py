"""``/api/task_runs`` (batch upsert, single create, read, filter, set_state, history) and ``/api/logs`` (batch
create, filter, keyset pages, batch limit) — on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import pytest

from tests.factories import (
    create_flow_run,
    create_logs,
    log_lines,
    record_task_runs,
    state,
    task_run_record,
)

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def at(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat()


def test_batch_upserts_across_two_batches(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    first = record_task_runs(
        api,
        [
            task_run_record(
                run["id"],
                id=a,
                task_key="extract",
                tags=["io"],
                states=[{"type": "PENDING", "timestamp": at(0)}, {"type": "RUNNING", "timestamp": at(1)}],
            ),
            task_run_record(run["id"], id=b, task_key="load", states=[{"type": "PENDING", "timestamp": at(2)}]),
        ],
    )
    assert first == {"accepted": 3, "rejected": []}
    running = api.get(f"/task_runs/{a}").json()
    assert running["state_type"] == "RUNNING"
    assert running["run_count"] == 1
    assert running["tags"] == ["io"]
    assert running["flow_run_id"] == run["id"]
    second = record_task_runs(
        api,
        [
            task_run_record(
                run["id"],
                id=a,
                task_key="extract",
                states=[{"type": "COMPLETED", "timestamp": at(5), "data": {"storage_key": "k"}}],
            ),
            task_run_record(
                run["id"],
                id=b,
                task_key="load",
                run_count=2,
                states=[{"type": "RUNNING", "timestamp": at(6)}, {"type": "FAILED", "timestamp": at(7)}],
            ),
        ],
    )
    assert second == {"accepted": 3, "rejected": []}
    done = api.get(f"/task_runs/{a}").json()
    assert done["state_type"] == "COMPLETED"
    assert done["state_version"] == 3
    assert done["start_time"] == running["start_time"]
    assert dt.datetime.fromisoformat(done["end_time"]) == T0 + dt.timedelta(seconds=5)
    assert done["total_run_time"] == pytest.approx(4)
    assert done["state"]["data"] == {"storage_key": "k"}
    failed = api.get(f"/task_runs/{b}").json()
    assert failed["state_type"] == "FAILED"
    assert failed["run_count"] == 2, "the SDK's attempt count wins when it is higher"
    history = api.get(f"/task_runs/{a}/states").json()
    assert [s["type"] for s in history] == ["PENDING", "RUNNING", "COMPLETED"]
    assert [s["timestamp"] for s in history] == sorted(s["timestamp"] for s in history)


def test_state_after_a_final_one_is_reported_in_rejected(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    tid = str(uuid.uuid4())
    record_task_runs(
        api,
        [
            task_run_record(
                run["id"],
                id=tid,
                states=[{"type": "RUNNING", "timestamp": at(0)}, {"type": "COMPLETED", "timestamp": at(1)}],
            )
        ],
    )
    answer = record_task_runs(
        api,
        [
            task_run_record(
                run["id"],
                id=tid,
                states=[{"type": "RUNNING", "timestamp": at(2)}, {"type": "FAILED", "timestamp": at(3)}],
            )
        ],
    )
    assert answer["accepted"] == 0
    assert len(answer["rejected"]) == 1
    rejected = answer["rejected"][0]
    assert rejected["id"] == tid
    assert rejected["state"] == "RUNNING"
    assert rejected["reason"]
    stored = api.get(f"/task_runs/{tid}").json()
    assert stored["state_type"] == "COMPLETED"
    assert len(api.get(f"/task_runs/{tid}/states").json()) == 2


def test_one_batch_may_carry_the_same_task_run_twice(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    tid = str(uuid.uuid4())
    answer = record_task_runs(
        api,
        [
            task_run_record(run["id"], id=tid, states=[{"type": "RUNNING", "timestamp": at(0)}]),
            task_run_record(run["id"], id=tid, states=[{"type": "COMPLETED", "timestamp": at(1)}]),
        ],
    )
    assert answer == {"accepted": 2, "rejected": []}
    assert api.get(f"/task_runs/{tid}").json()["state_type"] == "COMPLETED"


def test_batch_for_an_unknown_flow_run_is_422_and_writes_nothing(api: httpx.Client) -> None:
    tid = str(uuid.uuid4())
    response = api.post(
        "/task_runs/batch",
        json={"task_runs": [task_run_record(str(uuid.uuid4()), id=tid, states=[state("RUNNING")])]},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert api.get(f"/task_runs/{tid}").status_code == 404


def test_bad_batches_are_422(api: httpx.Client) -> None:
    for body in [
        {},
        {"task_runs": "x"},
        {"task_runs": [{"id": "nope", "task_key": "t", "name": "t"}]},
        {"task_runs": [{"id": str(uuid.uuid4()), "task_key": "", "name": "t"}]},
        {"task_runs": [{"id": str(uuid.uuid4()), "task_key": "t", "name": "t", "run_count": -1}]},
        {"task_runs": [{"id": str(uuid.uuid4()), "task_key": "t", "name": "t", "states": [{"type": "NOPE"}]}]},
    ]:
        response = api.post("/task_runs/batch", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"]


def test_single_create_read_set_state_and_filter(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    other = create_flow_run(api, state=state("RUNNING"))
    created = api.post("/task_runs/", json={"flow_run_id": run["id"], "task_key": "t1", "state": state("PENDING")})
    assert created.status_code == 201, created.text
    tr = created.json()
    assert tr["name"] == "t1"
    assert tr["state_type"] == "PENDING"
    answer = api.post(f"/task_runs/{tr['id']}/set_state", json={"state": state("RUNNING")})
    assert answer.status_code == 201
    assert api.post(f"/task_runs/{tr['id']}/set_state", json={"state": state("COMPLETED")}).status_code == 201
    refused = api.post(f"/task_runs/{tr['id']}/set_state", json={"state": state("RUNNING")})
    assert refused.status_code == 200
    assert refused.json()["status"] == "REJECT"
    forced = api.post(f"/task_runs/{tr['id']}/set_state", json={"state": state("RUNNING"), "force": True})
    assert forced.status_code == 201
    assert api.post(f"/task_runs/{uuid.uuid4()}/set_state", json={"state": state("RUNNING")}).status_code == 404
    record_task_runs(api, [task_run_record(other["id"], task_key="elsewhere", states=[state("COMPLETED")])])

    def filter_ids(body: dict[str, Any]) -> set[str]:
        response = api.post("/task_runs/filter", json=body)
        assert response.status_code == 200, response.text
        return {t["id"] for t in response.json()}

    assert filter_ids({"task_runs": {"flow_run_id": {"any_": [run["id"]]}}}) == {tr["id"]}
    assert len(filter_ids({})) == 2
    assert filter_ids({"task_runs": {"state": {"type": {"any_": ["RUNNING"]}}}}) == {tr["id"]}
    assert filter_ids({"task_runs": {"name": {"any_": ["elsewhere"]}}}) != set()
    assert filter_ids({"task_runs": {"flow_run_id": {"is_null_": True}}}) == set()
    assert api.get(f"/task_runs/{uuid.uuid4()}").status_code == 404
    assert api.get(f"/task_runs/{uuid.uuid4()}/states").status_code == 404
    assert api.delete(f"/task_runs/{tr['id']}").status_code == 204
    assert api.get(f"/task_runs/{tr['id']}").status_code == 404


def test_task_run_keyset_pages(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    records = [
        task_run_record(run["id"], task_key=f"t{i}", states=[{"type": "PENDING", "timestamp": at(i % 3)}])
        for i in range(25)
    ]
    record_task_runs(api, records)
    for sort in ("EXPECTED_START_TIME_ASC", "EXPECTED_START_TIME_DESC"):
        seen: list[str] = []
        cursor = None
        while True:
            response = api.post("/task_runs/filter", json={"sort": sort, "limit": 10, "cursor": cursor})
            assert response.status_code == 200, response.text
            seen.extend(t["id"] for t in response.json())
            cursor = response.headers.get("X-Orch-Next-Cursor")
            if cursor is None:
                break
        assert sorted(seen) == sorted(r["id"] for r in records)
        assert len(seen) == len(set(seen))


# -- logs --------------------------------------------------------------------------------------------------------


def test_logs_batch_create_and_filter(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    other = create_flow_run(api, state=state("RUNNING"))
    tid = str(uuid.uuid4())
    assert create_logs(api, log_lines(run["id"], 10, level=20, start=T0)) == 10
    assert create_logs(api, log_lines(run["id"], 3, level=40, start=T0 + dt.timedelta(seconds=1), prefix="err")) == 3
    assert create_logs(api, log_lines(run["id"], 2, level=10, start=T0, task_run_id=tid)) == 2
    assert create_logs(api, log_lines(other["id"], 4, start=T0)) == 4

    def messages(body: dict[str, Any]) -> list[str]:
        response = api.post("/logs/filter", json=body)
        assert response.status_code == 200, response.text
        return [log["message"] for log in response.json()]

    mine = {"flow_run_id": {"any_": [run["id"]]}}
    assert len(messages({"logs": mine})) == 15
    assert messages({"logs": {**mine, "level": {"ge_": 40}}}) == ["err 0", "err 1", "err 2"]
    assert len(messages({"logs": {**mine, "level": {"le_": 20}}})) == 12
    assert len(messages({"logs": {**mine, "task_run_id": {"any_": [tid]}}})) == 2
    assert len(messages({"logs": {**mine, "task_run_id": {"is_null_": True}}})) == 13
    window = {"after_": (T0 + dt.timedelta(seconds=1)).isoformat()}
    assert messages({"logs": {**mine, "timestamp": window}}) == ["err 0", "err 1", "err 2"]
    ascending = messages({"logs": mine, "sort": "TIMESTAMP_ASC"})
    assert ascending[-1] == "err 2"
    assert messages({"logs": mine, "sort": "TIMESTAMP_DESC"}) == list(reversed(ascending))
    one = api.post("/logs/filter", json={"logs": mine, "limit": 1}).json()[0]
    assert {"id", "name", "level", "message", "timestamp", "flow_run_id", "task_run_id"} <= set(one)


def test_logs_keyset_pages(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    # Many lines share a timestamp: the id breaks the ties.
    create_logs(api, log_lines(run["id"], 250, start=T0, step=dt.timedelta(0)))
    create_logs(api, log_lines(run["id"], 50, start=T0 + dt.timedelta(seconds=1), prefix="later"))
    for sort in ("TIMESTAMP_ASC", "TIMESTAMP_DESC"):
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = api.post(
                "/logs/paginate",
                json={"logs": {"flow_run_id": {"any_": [run["id"]]}}, "sort": sort, "limit": 70, "cursor": cursor},
            )
            assert page.status_code == 200, page.text
            body = page.json()
            seen.extend(body["results"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        ids = [log["id"] for log in seen]
        assert len(ids) == 300
        assert len(set(ids)) == 300
        keys = [(dt.datetime.fromisoformat(log["timestamp"]), uuid.UUID(log["id"])) for log in seen]
        assert keys == sorted(keys, reverse=sort == "TIMESTAMP_DESC")


def test_log_batch_limit_and_bad_logs(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    too_many = log_lines(run["id"], 10_001, start=T0)
    response = api.post("/logs/", json=too_many)
    assert response.status_code == 422, response.text[:300]
    assert response.json()["detail"]
    assert api.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [run["id"]]}}}).json() == []
    line = log_lines(run["id"], 1, start=T0)[0]
    for bad in [
        {**line, "level": 101},
        {**line, "level": "INFO"},
        {**line, "timestamp": "now"},
        {**line, "flow_run_id": "nope"},
        {**line, "extra": 1},
        {k: v for k, v in line.items() if k != "message"},
    ]:
        response = api.post("/logs/", json=[bad])
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["detail"]
    unknown = api.post("/logs/", json=[{**line, "flow_run_id": str(uuid.uuid4())}])
    assert unknown.status_code == 422, unknown.text
    assert api.post("/logs/", json={"not": "a list"}).status_code == 422
    assert api.post("/logs/", json=[]).status_code == 201


def test_batch_state_times_are_stored_in_utc(api: httpx.Client) -> None:
    """A naive state time means UTC; an offset is converted (the batch validates them as any datetime and the model
    makes them UTC)."""
    run = create_flow_run(api, state=state("RUNNING"))
    tid = str(uuid.uuid4())
    states = [
        {"type": "PENDING", "timestamp": "2026-01-01T00:00:00"},
        {"type": "RUNNING", "timestamp": "2026-01-01T02:00:01+02:00"},
        {"type": "COMPLETED", "timestamp": "2025-12-31T19:00:02-05:00"},
    ]
    assert record_task_runs(api, [task_run_record(run["id"], id=tid, states=states)]) == {
        "accepted": 3,
        "rejected": [],
    }
    history = api.get(f"/task_runs/{tid}/states").json()
    assert [dt.datetime.fromisoformat(s["timestamp"]) for s in history] == [
        T0 + dt.timedelta(seconds=i) for i in range(3)
    ]
    assert all(s["timestamp"].endswith(("+00:00", "Z")) for s in history)
    row = api.get(f"/task_runs/{tid}").json()
    assert dt.datetime.fromisoformat(row["start_time"]) == T0 + dt.timedelta(seconds=1)
    assert dt.datetime.fromisoformat(row["end_time"]) == T0 + dt.timedelta(seconds=2)


def test_batch_with_a_time_out_of_range_in_utc_is_422_and_writes_nothing(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    fine, bad = str(uuid.uuid4()), str(uuid.uuid4())
    response = api.post(
        "/task_runs/batch",
        json={
            "task_runs": [
                task_run_record(run["id"], id=fine, states=[state("RUNNING")]),
                task_run_record(
                    run["id"], id=bad, states=[{"type": "RUNNING", "timestamp": "0001-01-01T00:30:00+01:00"}]
                ),
            ]
        },
    )
    assert response.status_code == 422, response.text
    assert "0001-01-01" in response.json()["detail"]
    assert api.get(f"/task_runs/{fine}").status_code == 404
    assert api.get(f"/task_runs/{bad}").status_code == 404
