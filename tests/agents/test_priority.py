"""Queue priority under ``--limit``: a free slot goes to the highest-priority due run, not to the run that waited
longest, with a real server, a real agent process and real engines (process launcher).

The low-priority queue's runs were scheduled earlier (and, with SQS, sent earlier) than the high-priority queue's
runs, and the agent lists the low-priority queue first; with ``--limit 1`` it still claims every high-priority run
before any low-priority one. The claim order is read from each run's state history (the time the server accepted
its ``Pending``), not from any timing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents.helpers import Stack, start_stack, wait_for
from tests.plugins.aws import aws_environment

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HIGH_RUNS = 3
LOW_RUNS = 3


def _claim_order(stack: Stack, run_ids: list[str]) -> list[str]:
    """The runs in the order the server accepted their claims (their ``Pending`` states)."""
    claimed: dict[str, dt.datetime] = {}
    for run_id in run_ids:
        (pending,) = [s for s in stack.client.read_flow_run_states(run_id) if s.type.value == "PENDING"]
        claimed[run_id] = pending.timestamp
    return sorted(run_ids, key=lambda r: claimed[r])


def _runs(stack: Stack, queue: str, ages: list[int]) -> list[str]:
    """One run per age (seconds ago it was due), oldest first."""
    now = dt.datetime.now(dt.UTC)
    return [
        stack.runs(queue, 1, scheduled_time=(now - dt.timedelta(seconds=age)).isoformat())[0]
        for age in sorted(ages, reverse=True)
    ]


def _low_then_high(stack: Stack) -> tuple[list[str], list[str]]:
    stack.queue("high", priority=1)
    stack.queue("low", priority=50)
    # Every low-priority run has been due longer than every high-priority run, and was created first.
    low = _runs(stack, "low", [600 + 10 * i for i in range(LOW_RUNS)])
    high = _runs(stack, "high", [60 + 10 * i for i in range(HIGH_RUNS)])
    return low, high


@pytest.fixture
def db_stack(tmp_path: Path) -> Iterator[Stack]:
    yield from start_stack(tmp_path, {})


@pytest.fixture
def sqs_stack(moto_server: Any, tmp_path: Path) -> Iterator[Stack]:
    extra = {
        "ORCH_RUN_QUEUE": "sqs",
        "ORCH_SQS_QUEUE_PREFIX": f"p{uuid.uuid4().hex[:8]}-",
        **aws_environment(moto_server.endpoint_url),
    }
    yield from start_stack(tmp_path, extra)


def test_database_queue_limit_one_claims_high_priority_runs_first(db_stack: Stack) -> None:
    stack = db_stack
    low, high = _low_then_high(stack)
    with stack.agent("low", "ranked", "-q", "high", "--limit", "1") as agent:
        assert wait_for(lambda: stack.all_finished(low + high), 180, 0.5), agent.text()[-3000:]
        assert agent.terminate() == 0
    assert set(stack.states(low + high).values()) == {"COMPLETED"}
    # The server orders by queue priority, then by due time: the exact order is known.
    assert _claim_order(stack, low + high) == high + low


@pytest.mark.aws
def test_sqs_queues_limit_one_claims_high_priority_runs_first(sqs_stack: Stack) -> None:
    stack = sqs_stack
    low, high = _low_then_high(stack)
    with stack.agent("low", "ranked", "-q", "high", "--sqs", "--limit", "1") as agent:
        assert wait_for(lambda: stack.all_finished(low + high), 180, 0.5), agent.text()[-3000:]
        assert agent.terminate() == 0
    assert set(stack.states(low + high).values()) == {"COMPLETED"}
    order = _claim_order(stack, low + high)
    # A standard SQS queue does not keep order within a queue; between queues, priority decides.
    assert set(order[:HIGH_RUNS]) == set(high), (order, high)
    assert set(order[HIGH_RUNS:]) == set(low)
