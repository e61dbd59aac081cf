"""The batching recorder on its own, with an in-memory backend standing in for the client.

The backend is a small class of our own (not a mock library): it records what it was sent and can be told to
fail like an unreachable server, which is the behaviour under test.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any

import pytest

from orch._engine.recorder import CollectingRecorder, Recorder, TaskRunInfo, fast_uuid7
from orch.exceptions import ServerUnavailable
from orch.states import State, StateType

pytestmark = pytest.mark.unit


class MemoryBackend:
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.attempts: list[bytes] = []
        self.delivered: list[bytes] = []
        self.logs: list[dict[str, Any]] = []
        self.down = False
        self.calls = 0
        self.sent = threading.Event()

    def record_task_runs_json(self, body: bytes) -> dict[str, Any]:
        self.calls += 1
        self.attempts.append(body)
        if self.down:
            raise ServerUnavailable("no server")
        self.delivered.append(body)
        records = json.loads(body)["task_runs"]
        self.batches.append(records)
        self.sent.set()
        return {"accepted": len(records), "rejected": []}

    def create_logs(self, logs: list[dict[str, Any]]) -> None:
        if self.down:
            raise ServerUnavailable("no server")
        self.logs.extend(logs)


def _run(name: str = "t") -> TaskRunInfo:
    return TaskRunInfo(fast_uuid7(), uuid.uuid4(), "mod.t", "0", name, ["a"], {})


def test_updates_of_one_run_are_coalesced_into_one_record_with_states_in_order() -> None:
    backend = MemoryBackend()
    recorder = Recorder(lambda: backend, interval=60)
    run = _run()
    run.run_count = 1
    recorder.task_run(run, [State(StateType.PENDING), State(StateType.RUNNING)])
    recorder.task_run(run, [State(StateType.COMPLETED)])
    assert recorder.flush(5)
    [[record]] = backend.batches
    assert record["id"] == str(run.id)
    assert [s["type"] for s in record["states"]] == ["PENDING", "RUNNING", "COMPLETED"]
    assert record["run_count"] == 1
    assert record["states"][0]["timestamp"].endswith("+00:00")


def test_unreachable_server_keeps_records_and_retries_them() -> None:
    backend = MemoryBackend()
    backend.down = True
    recorder = Recorder(lambda: backend, interval=0.05, max_backoff=0.1)
    run = _run()
    recorder.task_run(run, [State(StateType.PENDING)])
    recorder.log(
        {"name": "x", "level": 20, "message": "hi", "timestamp": 0.0, "flow_run_id": None, "task_run_id": None}
    )
    assert recorder.flush(5) is False  # attempted, not delivered
    assert recorder.pending == 2
    recorder.task_run(run, [State(StateType.COMPLETED)])
    backend.down = False
    assert backend.sent.wait(5)
    assert recorder.flush(5)
    states = [s["type"] for batch in backend.batches for r in batch for s in r["states"]]
    assert states == ["PENDING", "COMPLETED"]
    assert backend.logs[0]["timestamp"] == "1970-01-01T00:00:00+00:00"
    assert backend.calls >= 2


def test_full_buffer_drops_with_a_warning_that_counts(caplog: pytest.LogCaptureFixture) -> None:
    backend = MemoryBackend()
    backend.down = True
    recorder = Recorder(lambda: backend, interval=60, max_pending=3)
    for _ in range(5):
        recorder.task_run(_run(), [State(StateType.PENDING)])
    with caplog.at_level(logging.WARNING, logger="orch.recorder"):
        recorder.flush(5)
    assert recorder.dropped == 2
    assert any("dropped 2 records" in r.getMessage() for r in caplog.records)


def test_close_warns_how_many_records_are_lost(caplog: pytest.LogCaptureFixture) -> None:
    backend = MemoryBackend()
    backend.down = True
    recorder = Recorder(lambda: backend, interval=60)
    recorder.task_run(_run(), [State(StateType.PENDING)])
    with caplog.at_level(logging.WARNING, logger="orch.recorder"):
        recorder.close(timeout=2)
    assert any("1 task-run records" in r.getMessage() for r in caplog.records)


def test_collecting_recorder_replays_into_another_recorder() -> None:
    backend = MemoryBackend()
    recorder = Recorder(lambda: backend, interval=60)
    collector = CollectingRecorder()
    run = _run()
    collector.task_run(run, [State(StateType.RUNNING)])
    collector.log(
        {"name": "x", "level": 20, "message": "m", "timestamp": 1.0, "flow_run_id": None, "task_run_id": None}
    )
    collector.replay(recorder)
    assert recorder.flush(5)
    assert backend.batches[0][0]["states"][0]["type"] == "RUNNING"
    assert backend.logs[0]["message"] == "m"


def test_fast_uuid7_is_a_valid_time_ordered_uuid() -> None:
    import time

    before = time.time_ns() // 1_000_000
    ids = [fast_uuid7() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    stamps = [u.int >> 80 for u in ids]  # the first 48 bits: Unix time in milliseconds
    assert before <= stamps[0] and stamps[-1] <= after
    assert stamps == sorted(stamps)  # ids made later never sort before earlier ones' milliseconds


def test_close_delivers_and_stops_the_sender_thread() -> None:
    backend = MemoryBackend()
    recorder = Recorder(lambda: backend, interval=60)
    recorder.task_run(_run(), [State(StateType.COMPLETED)])
    recorder.close(timeout=5)
    assert len(backend.batches) == 1
    assert recorder._thread is not None
    recorder._thread.join(5)
    assert not recorder._thread.is_alive()
    assert recorder.flush(1)  # nothing pending: answers at once


def test_records_carry_their_state_offset_and_leave_out_defaults() -> None:
    backend = MemoryBackend()
    recorder = Recorder(lambda: backend, interval=60)
    run = TaskRunInfo(fast_uuid7(), None, "mod.t", "0", "t-0", [], {})
    run.run_count = 1
    recorder.task_run(run, [State(StateType.PENDING), State(StateType.RUNNING)])
    assert recorder.flush(5)
    recorder.task_run(run, [State(StateType.RUNNING, "Retrying"), State(StateType.COMPLETED)])
    assert recorder.flush(5)
    [[first], [second]] = backend.batches
    assert first["state_offset"] == 0
    assert [s["type"] for s in first["states"]] == ["PENDING", "RUNNING"]
    assert second["state_offset"] == 2
    assert [s["type"] for s in second["states"]] == ["RUNNING", "COMPLETED"]
    # No flow run, tags, inputs, cache key, message, details or data: not sent; nor a state's default name (the
    # server gives a state without a name its type's default), but a name of its own is.
    assert set(first) == {"id", "task_key", "dynamic_key", "name", "run_count", "state_offset", "states"}
    assert set(first["states"][0]) == {"type", "timestamp"}
    assert [s.get("name") for s in second["states"]] == ["Retrying", None]


def test_a_failed_batch_is_sent_again_unchanged_before_newer_records() -> None:
    backend = MemoryBackend()
    backend.down = True
    recorder = Recorder(lambda: backend, interval=0.05, max_backoff=0.1)
    run = _run()
    recorder.task_run(run, [State(StateType.PENDING), State(StateType.RUNNING)])
    assert recorder.flush(5) is False
    recorder.task_run(run, [State(StateType.COMPLETED)])
    backend.down = False
    assert recorder.flush(5)
    assert backend.delivered[0] == backend.attempts[0], "the batch that failed is sent again byte for byte"
    records = [r for batch in backend.batches for r in batch]
    assert [(r["state_offset"], [s["type"] for s in r["states"]]) for r in records] == [
        (0, ["PENDING", "RUNNING"]),
        (2, ["COMPLETED"]),
    ]


def test_many_runs_go_in_batches_of_at_most_batch_size_records() -> None:
    backend = MemoryBackend()
    recorder = Recorder(lambda: backend, interval=60, batch_size=40)
    runs = [_run(f"t-{i}") for i in range(250)]
    for run in runs:
        recorder.task_run(run, [State(StateType.PENDING), State(StateType.RUNNING)])
        recorder.task_run(run, [State(StateType.COMPLETED)])
    assert recorder.flush(5)
    assert all(0 < len(batch) <= 40 for batch in backend.batches)
    records = [r for batch in backend.batches for r in batch]
    by_run: dict[str, list[str]] = {}
    for record in records:
        by_run.setdefault(record["id"], []).extend(s["type"] for s in record["states"])
    assert by_run == {str(run.id): ["PENDING", "RUNNING", "COMPLETED"] for run in runs}


def test_runs_handed_in_from_many_threads_keep_their_own_states() -> None:
    backend = MemoryBackend()
    recorder = Recorder(lambda: backend, interval=0.01, batch_size=50)
    runs = [[_run(f"w{w}-{i}") for i in range(300)] for w in range(4)]

    def work(mine: list[TaskRunInfo]) -> None:
        for run in mine:
            recorder.task_run(run, [State(StateType.PENDING, message=run.name), State(StateType.RUNNING)])
            recorder.task_run(run, [State(StateType.COMPLETED, message=run.name)])

    threads = [threading.Thread(target=work, args=(mine,)) for mine in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert recorder.flush(10)
    by_run: dict[str, list[tuple[str, Any]]] = {}
    for record in (r for batch in backend.batches for r in batch):
        by_run.setdefault(record["name"], []).extend((s["type"], s.get("message")) for s in record["states"])
    assert len(by_run) == 1200
    for name, states in by_run.items():
        assert states == [("PENDING", name), ("RUNNING", None), ("COMPLETED", name)]


def test_records_that_cannot_be_json_are_dropped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    backend = MemoryBackend()
    recorder = Recorder(lambda: backend, interval=60)
    bad = TaskRunInfo(fast_uuid7(), None, "mod.t", "0", "t-0", [], {"x": float("nan")})
    recorder.task_run(bad, [State(StateType.PENDING)])
    with caplog.at_level(logging.WARNING, logger="orch.recorder"):
        assert recorder.flush(5)
    assert backend.batches == []
    assert recorder.dropped == 1
    assert any("could not encode 1 task-run records" in r.getMessage() for r in caplog.records)


def test_records_are_written_as_json_dumps_writes_them() -> None:
    """``_record_json`` writes a trivial task's record by hand (every task goes through it): on random records,
    plain ones and ones with every optional field, it must give the same JSON value as ``json.dumps``, escaping
    names (quotes, backslashes, control characters, non-ASCII) the same way, and refuse NaN the same way."""
    import json
    import math
    import random
    import uuid

    from orch._engine.recorder import _record_json

    rng = random.Random(4)
    texts = ["inc", 'quo"te', "back\\slash", "tab\there\nnewline", "é\u2603\U0001f600", "\x00\x1f", ""]
    for _ in range(3_000):
        record: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "task_key": rng.choice(texts[:-1]),
            "dynamic_key": str(rng.randrange(10_000)),
            "name": rng.choice(texts[:-1]),
            "run_count": rng.randrange(4),
            "state_offset": rng.randrange(4),
            "states": [
                {"type": rng.choice(["PENDING", "RUNNING", "COMPLETED"]), "name": rng.choice(texts), "timestamp": "t"}
                for _ in range(rng.randrange(4))
            ],
        }
        for state in record["states"]:
            if rng.random() < 0.6:  # default names are left out of the records: both kinds of states occur
                del state["name"]
                state["timestamp"] = state.pop("timestamp")  # the recorder's key order
        if rng.random() < 0.7:
            record["flow_run_id"] = str(uuid.uuid4())
        if rng.random() < 0.2:
            record[rng.choice(["tags", "task_inputs", "cache_key"])] = rng.choice([["a"], {"x": [1]}, "k"])
        if record["states"] and rng.random() < 0.2:
            record["states"][0][rng.choice(["message", "data", "state_details"])] = rng.choice(texts)
        written = _record_json(record)
        assert json.loads(written) == record
        assert written == json.dumps(record, separators=(",", ":"))  # same text too (same key order, escaping)
    with pytest.raises(ValueError, match="JSON compliant"):
        _record_json(
            {
                "id": "x",
                "task_key": "k",
                "dynamic_key": "0",
                "name": "n",
                "run_count": 0,
                "state_offset": 0,
                "states": [],
                "task_inputs": {"x": math.nan},
            }
        )
