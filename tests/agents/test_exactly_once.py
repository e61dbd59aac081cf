"""Exactly-once start over at-least-once delivery, with real processes end to end.

A real ``orch server start`` (SQLite) with ``ORCH_RUN_QUEUE=sqs`` against the moto server, real agent processes
(``python -m orch.cli agent start --sqs``) with the process launcher, and a deployed flow that appends one line per
execution to a file named after its run id — so "exactly once" is counted on the flow code itself:

- every SQS message delivered twice (the server's send plus a duplicate send) and two agents on one queue;
- an agent SIGKILLed between receive and claim (the ``ORCH_AGENT_CLAIM_DELAY`` test hook holds it in that window):
  the message comes back after the visibility timeout and another agent runs it, once;
- poison messages (not a run; a run id that does not exist) end in the dead-letter queue after the maximum
  receives and show in ``orch work-queue inspect``;
- the database queue: two agents long-polling the API.

Agents get ``--limit`` so that two agents on two shared cores do not start dozens of engines at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents.helpers import Stack, executions, start_stack, wait_for
from tests.plugins.aws import aws_environment

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]

SQS_RUNS = int(__import__("os").environ.get("ORCH_TEST_SQS_RUNS", "200"))
DB_RUNS = int(__import__("os").environ.get("ORCH_TEST_DB_RUNS", "100"))
VISIBILITY = 4
MAX_RECEIVES = 3


@pytest.fixture(scope="module")
def sqs_stack(moto_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One server for the SQS tests (each test uses its own work queue): server start-up is not what is tested."""
    moto_server.reset()
    extra = {
        "ORCH_RUN_QUEUE": "sqs",
        "ORCH_SQS_QUEUE_PREFIX": f"t{uuid.uuid4().hex[:8]}-",
        "ORCH_SQS_VISIBILITY_TIMEOUT": str(VISIBILITY),
        "ORCH_SQS_MAX_RECEIVES": str(MAX_RECEIVES),
        **aws_environment(moto_server.endpoint_url),
    }
    yield from start_stack(tmp_path_factory.mktemp("sqs-stack"), extra)


@pytest.fixture
def db_stack(tmp_path: Path) -> Iterator[Stack]:
    yield from start_stack(tmp_path, {})


def _sqs(moto: Any) -> Any:
    return moto.client("sqs")


def _not_visible(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"])


def test_duplicated_messages_and_two_agents_run_each_of_200_runs_exactly_once(
    sqs_stack: Stack, moto_server: Any
) -> None:
    stack = sqs_stack
    url = stack.queue("twice")
    run_ids = stack.runs("twice", SQS_RUNS)
    sqs = _sqs(moto_server)
    # At-least-once delivery, made certain: every run's message is sent a second time.
    for i in range(0, len(run_ids), 10):
        entries = [
            {"Id": str(n), "MessageBody": json.dumps({"flow_run_id": r})} for n, r in enumerate(run_ids[i : i + 10])
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    with (
        stack.agent("twice", "a", "--sqs", "--limit", "4") as a,
        stack.agent("twice", "b", "--sqs", "--limit", "4") as b,
    ):
        assert wait_for(lambda: stack.all_finished(run_ids), 400, 1.0), a.text()[-3000:] + b.text()[-3000:]

        def drained() -> bool:
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            return attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

        # Every message, the duplicates too, is deleted: claimed, or rejected because the run was claimed already.
        assert wait_for(drained, 60), a.text()[-3000:] + b.text()[-3000:]
        assert a.terminate() == 0
        assert b.terminate() == 0
    counts = stack.executions(run_ids)
    assert sorted(counts) == sorted(run_ids)
    assert set(counts.values()) == {1}, {r: n for r, n in counts.items() if n != 1}
    assert set(stack.states(run_ids).values()) == {"COMPLETED"}
    # Both agents did work.
    assert "launched run" in a.text() and "launched run" in b.text()


def test_an_agent_killed_between_receive_and_claim_loses_nothing(sqs_stack: Stack, moto_server: Any) -> None:
    stack = sqs_stack
    url = stack.queue("killed")
    sqs = _sqs(moto_server)
    with stack.agent("killed", "doomed", "--sqs", ORCH_AGENT_CLAIM_DELAY="120") as doomed:
        (run_id,) = stack.runs("killed", 1)
        assert wait_for(lambda: _not_visible(sqs, url) == 1, 30), doomed.text()
        doomed.kill()  # SIGKILL inside the receive-to-claim window: no handing back, no OFFLINE heartbeat
    assert stack.states([run_id])[run_id] == "SCHEDULED"
    with stack.agent("killed", "heir", "--sqs") as heir:
        # The message reappears after the visibility timeout; the other agent claims and runs it.
        assert wait_for(lambda: stack.all_finished([run_id]), 60), heir.text()
        assert heir.terminate() == 0
    assert stack.states([run_id])[run_id] == "COMPLETED"
    assert stack.executions([run_id]) == {run_id: 1}


def test_sigterm_hands_back_received_runs_at_once_and_reports_offline(sqs_stack: Stack, moto_server: Any) -> None:
    stack = sqs_stack
    url = stack.queue("drained")
    sqs = _sqs(moto_server)
    with stack.agent("drained", "slow", "--sqs", ORCH_AGENT_CLAIM_DELAY="120") as slow:
        run_ids = stack.runs("drained", 3)
        assert wait_for(lambda: _not_visible(sqs, url) == 3, 30), slow.text()
        assert slow.terminate(timeout=15) == 0
    # Visible again right away, long before the visibility timeout would have expired.
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "3", attrs
    agents = {a["name"]: a for a in stack.client.request("POST", "/agents/filter")}
    assert agents["slow"]["status"] == "OFFLINE"
    assert set(stack.states(run_ids).values()) == {"SCHEDULED"}
    assert "handed back" in slow.text()


def test_poison_messages_end_in_the_dead_letter_queue(sqs_stack: Stack, moto_server: Any) -> None:
    stack = sqs_stack
    url = stack.queue("poisoned")
    sqs = _sqs(moto_server)
    missing = str(uuid.uuid4())
    sqs.send_message(QueueUrl=url, MessageBody="this is not a run")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"flow_run_id": missing}))

    def dead() -> Any:
        status = stack.client.request("GET", "/work_queues/poisoned/status")
        return status["dead_letters"] == 2 and status

    with stack.agent("poisoned", "taster", "--sqs") as agent:
        assert wait_for(dead, VISIBILITY * (MAX_RECEIVES + 3) + 20, 1.0), agent.text()
        assert agent.terminate() == 0
    assert "does not exist" in agent.text()
    assert "unreadable message" in agent.text()
    out = subprocess.run(
        [sys.executable, "-m", "orch.cli", "work-queue", "inspect", "poisoned"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "dead letters" in out
    assert "this is not a run" in out or missing in out
    assert missing not in executions(stack.markers)


def test_database_queue_two_agents_run_each_of_100_runs_exactly_once(db_stack: Stack) -> None:
    stack = db_stack
    modules = stack.tmp / "modules"
    modules.mkdir()
    run_ids = stack.runs("default", DB_RUNS - 1)
    # One run reports what the engine had imported when the flow started: nothing of the server side.
    run_ids += stack.runs("default", 1, parameters={"modules_dir": str(modules)})
    with stack.agent("default", "a", "--limit", "4") as a, stack.agent("default", "b", "--limit", "4") as b:
        assert wait_for(lambda: stack.all_finished(run_ids), 400, 1.0), a.text()[-3000:] + b.text()[-3000:]
        assert a.terminate() == 0
        assert b.terminate() == 0
    counts = stack.executions(run_ids)
    assert sorted(counts) == sorted(run_ids)
    assert set(counts.values()) == {1}
    assert set(stack.states(run_ids).values()) == {"COMPLETED"}
    assert (modules / run_ids[-1]).read_text() == ""
