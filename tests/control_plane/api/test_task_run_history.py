"""A task run's state history kept on its own row (``task_runs.state_history``), on SQLite and PostgreSQL.

Recording a task run writes one row; ``GET /api/task_runs/{id}/states`` reads the states back in order; a batch sent
twice (``state_offset``) is recorded once; states split over batches end as one full history; refused states are not
written; ``set_state`` goes through the task-run policy and appends. The database is read directly where the point
is what is stored (one row, the JSON kept).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.factories import create_flow_run, record_task_runs, state, task_run_record

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def at(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat()


def pending_running_completed(start: float = 0) -> list[dict[str, Any]]:
    return [
        {"type": "PENDING", "timestamp": at(start)},
        {"type": "RUNNING", "timestamp": at(start + 1)},
        {"type": "COMPLETED", "timestamp": at(start + 2), "data": {"storage_key": "k"}},
    ]


def stored_row(database: Any, task_run_id: str) -> Any:
    from orch.control_plane.db import orm

    with database.session(write=False) as session:
        table = orm.TaskRun.__table__
        return session.execute(sa.select(table).where(table.c.id == uuid.UUID(task_run_id))).one()


def history(api: httpx.Client, task_run_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/task_runs/{task_run_id}/states")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_task_run_is_one_row_holding_its_history(api: httpx.Client, database: Any) -> None:
    from orch.control_plane.db import orm

    run = create_flow_run(api, state=state("RUNNING"))
    tid = str(uuid.uuid4())
    answer = record_task_runs(api, [task_run_record(run["id"], id=tid, states=pending_running_completed())])
    assert answer == {"accepted": 3, "rejected": []}

    assert set(orm.Base.metadata.tables) >= {"task_runs"}
    assert "task_run_states" not in orm.Base.metadata.tables
    row = stored_row(database, tid)
    assert [entry["type"] for entry in row.state_history] == ["PENDING", "RUNNING", "COMPLETED"]
    # Compact: only the fields that are set.
    assert set(row.state_history[0]) == {"type", "name", "timestamp"}
    assert row.state_history[2]["data"] == {"storage_key": "k"}
    assert (row.state_type, row.state_version, row.run_count) == ("COMPLETED", 3, 1)

    states = history(api, tid)
    assert [(s["type"], s["name"]) for s in states] == [
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("COMPLETED", "Completed"),
    ]
    assert [dt.datetime.fromisoformat(s["timestamp"]) for s in states] == [
        T0 + dt.timedelta(seconds=i) for i in range(3)
    ]
    assert states[2]["data"] == {"storage_key": "k"}
    # Each state has an id, the same on every read and different from the others.
    assert len({s["id"] for s in states}) == 3
    assert [s["id"] for s in history(api, tid)] == [s["id"] for s in states]


def test_a_batch_sent_twice_is_recorded_once(api: httpx.Client, database: Any) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    tid = str(uuid.uuid4())
    batch = [task_run_record(run["id"], id=tid, state_offset=0, states=pending_running_completed())]
    first = record_task_runs(api, batch)
    before = stored_row(database, tid)
    # The answer to the first send was lost; the client sends the same batch again.
    again = record_task_runs(api, batch)
    assert first == again == {"accepted": 3, "rejected": []}
    after = stored_row(database, tid)
    assert len(after.state_history) == 3
    assert (after.state_version, after.updated, after.end_time) == (
        before.state_version,
        before.updated,
        before.end_time,
    )
    assert [s["type"] for s in history(api, tid)] == ["PENDING", "RUNNING", "COMPLETED"]


def test_a_retried_batch_with_newer_states_appends_only_the_new_ones(api: httpx.Client) -> None:
    """The SDK keeps an unanswered record and adds the run's later states to it before sending it again."""
    run = create_flow_run(api, state=state("RUNNING"))
    tid = str(uuid.uuid4())
    states = pending_running_completed()
    record_task_runs(api, [task_run_record(run["id"], id=tid, state_offset=0, states=states[:2])])
    answer = record_task_runs(api, [task_run_record(run["id"], id=tid, state_offset=0, states=states)])
    assert answer == {"accepted": 3, "rejected": []}
    assert [s["type"] for s in history(api, tid)] == ["PENDING", "RUNNING", "COMPLETED"]
    assert api.get(f"/task_runs/{tid}").json()["state_version"] == 3


def test_states_split_over_batches_end_as_the_full_history(api: httpx.Client, database: Any) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    tid = str(uuid.uuid4())
    states = pending_running_completed()
    record_task_runs(api, [task_run_record(run["id"], id=tid, run_count=1, state_offset=0, states=states[:2])])
    running = stored_row(database, tid)
    assert (running.state_type, running.end_time) == ("RUNNING", None)
    record_task_runs(api, [task_run_record(run["id"], id=tid, run_count=1, state_offset=2, states=states[2:])])
    done = stored_row(database, tid)
    assert [entry["type"] for entry in done.state_history] == ["PENDING", "RUNNING", "COMPLETED"]
    assert (done.state_type, done.state_version, done.run_count) == ("COMPLETED", 3, 1)
    assert done.start_time == T0 + dt.timedelta(seconds=1)
    assert done.end_time == T0 + dt.timedelta(seconds=2)
    assert done.total_run_time == pytest.approx(1)
    assert [s["type"] for s in history(api, tid)] == ["PENDING", "RUNNING", "COMPLETED"]


def test_a_refused_state_is_not_written(api: httpx.Client, database: Any) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    tid = str(uuid.uuid4())
    record_task_runs(api, [task_run_record(run["id"], id=tid, state_offset=0, states=pending_running_completed())])
    before = stored_row(database, tid)
    answer = record_task_runs(
        api,
        [
            task_run_record(
                run["id"],
                id=tid,
                state_offset=3,
                states=[{"type": "RUNNING", "timestamp": at(5)}, {"type": "FAILED", "timestamp": at(6)}],
            )
        ],
    )
    assert answer["accepted"] == 0
    assert [(r["id"], r["state"]) for r in answer["rejected"]] == [(tid, "RUNNING")]
    after = stored_row(database, tid)
    assert after.state_history == before.state_history
    assert (after.state_type, after.state_version, after.updated) == ("COMPLETED", 3, before.updated)


def test_a_batch_may_carry_one_new_run_in_several_records(api: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within one round of the batch and across rounds (the second record then reads back the row just written)."""
    from orch.control_plane.models import task_runs

    monkeypatch.setattr(task_runs, "_ROUND", 2)
    run = create_flow_run(api, state=state("RUNNING"))
    same_round, next_round = str(uuid.uuid4()), str(uuid.uuid4())
    states = pending_running_completed()
    answer = record_task_runs(
        api,
        [
            task_run_record(run["id"], id=same_round, state_offset=0, states=states[:2]),
            task_run_record(run["id"], id=same_round, state_offset=2, states=states[2:]),
            task_run_record(run["id"], id=next_round, state_offset=0, states=states[:1]),
            task_run_record(run["id"], id=next_round, state_offset=1, states=states[1:]),
        ],
    )
    assert answer == {"accepted": 6, "rejected": []}
    for tid in (same_round, next_round):
        assert [s["type"] for s in history(api, tid)] == ["PENDING", "RUNNING", "COMPLETED"]
        stored = api.get(f"/task_runs/{tid}").json()
        assert (stored["state_type"], stored["state_version"]) == ("COMPLETED", 3)


def test_set_state_goes_through_the_task_policy_and_appends(api: httpx.Client) -> None:
    run = create_flow_run(api, state=state("RUNNING"))
    created = api.post("/task_runs/", json={"flow_run_id": run["id"], "task_key": "t", "state": state("PENDING")})
    tid = created.json()["id"]
    assert api.post(f"/task_runs/{tid}/set_state", json={"state": state("RUNNING")}).status_code == 201
    assert api.post(f"/task_runs/{tid}/set_state", json={"state": state("COMPLETED")}).status_code == 201
    refused = api.post(f"/task_runs/{tid}/set_state", json={"state": state("RUNNING", message="again")})
    assert refused.status_code == 200
    assert refused.json()["status"] == "REJECT"
    assert refused.json()["state"]["type"] == "COMPLETED"
    assert [s["type"] for s in history(api, tid)] == ["PENDING", "RUNNING", "COMPLETED"]
    forced = api.post(f"/task_runs/{tid}/set_state", json={"state": state("RUNNING", "Rerun"), "force": True})
    assert forced.status_code == 201
    states = history(api, tid)
    assert [(s["type"], s["name"]) for s in states][-2:] == [("COMPLETED", "Completed"), ("RUNNING", "Rerun")]
    assert [s["timestamp"] for s in states] == sorted(s["timestamp"] for s in states)
    assert api.get(f"/task_runs/{tid}").json()["state_version"] == 4


def test_fields_at_their_defaults_and_set_ones_are_both_stored(api: httpx.Client) -> None:
    """New runs of one batch with and without tags, inputs, details and data (they are written differently)."""
    run = create_flow_run(api, state=state("RUNNING"))
    plain, full = str(uuid.uuid4()), str(uuid.uuid4())
    cached = {
        "type": "COMPLETED",
        "name": "Cached",
        "timestamp": at(3),
        "state_details": {"cache_key": "abc"},
        "data": 0,
    }
    record_task_runs(
        api,
        [
            task_run_record(run["id"], id=plain, states=[{"type": "RUNNING", "timestamp": at(1)}]),
            task_run_record(
                run["id"],
                id=full,
                tags=["etl", "io"],
                task_inputs={"x": [{"input_type": "parameter", "name": "x"}]},
                cache_key="abc",
                states=[{"type": "PENDING", "timestamp": at(2)}, cached],
            ),
        ],
    )
    bare = api.get(f"/task_runs/{plain}").json()
    assert (bare["tags"], bare["task_inputs"], bare["state"]["data"]) == ([], {}, None)
    assert bare["state"]["state_details"]["cache_key"] is None
    stored = api.get(f"/task_runs/{full}").json()
    assert stored["tags"] == ["etl", "io"]
    assert stored["task_inputs"] == {"x": [{"input_type": "parameter", "name": "x"}]}
    assert stored["cache_key"] == "abc"
    assert (stored["state"]["name"], stored["state"]["data"]) == ("Cached", 0)
    assert stored["state"]["state_details"]["cache_key"] == "abc"
    for task_run in (bare, stored):
        created = dt.datetime.fromisoformat(task_run["created"])
        assert created.tzinfo is not None
        assert task_run["updated"] == task_run["created"]
        assert abs(created - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    assert history(api, full)[1]["state_details"]["cache_key"] == "abc"


def test_a_body_that_is_not_json_is_422(api: httpx.Client) -> None:
    for body in [b"{", b"\xff\xfe", b"", b"null", b'{"task_runs": [{"id": "x"}]}']:
        response = api.post("/task_runs/batch", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"]


def test_the_batch_body_is_documented(api: httpx.Client) -> None:
    operation = api.get("/openapi.json").json()["paths"]["/api/task_runs/batch"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    record = schema["properties"]["task_runs"]["items"]
    assert {"id", "task_key", "name", "state_offset", "states"} <= set(record["properties"])
    assert "$ref" not in str(schema)


def test_a_row_written_without_its_history_reads_as_no_states(api: httpx.Client, database: Any) -> None:
    """Bulk loads (``bench/ui_pages.py`` COPYs task runs) may leave the column out: the database fills in ``[]``."""
    from orch.control_plane.db.types import Timestamp

    tid = uuid.uuid4()
    insert = sa.text(
        "INSERT INTO task_runs (id, created, updated, name, tags, state_details, state_version, run_count,"
        " total_run_time, task_key, dynamic_key, task_inputs)"
        " VALUES (:id, :now, :now, 'bulk', '[]', '{}', 0, 0, 0, 'bulk', '0', '{}')"
    ).bindparams(sa.bindparam("id", type_=sa.Uuid()), sa.bindparam("now", type_=Timestamp()))
    with database.session() as session:
        session.execute(insert, {"id": tid, "now": T0})
    assert history(api, str(tid)) == []
    record_task_runs(api, [task_run_record(None, id=str(tid), state_offset=0, states=[{"type": "RUNNING"}])])
    assert [s["type"] for s in history(api, str(tid))] == ["RUNNING"]
