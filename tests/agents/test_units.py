"""In-process pieces of the agent: capacity reservations (``--limit``), output line splitting, settings parsing."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from orch.agents.infrastructure._output import OutputShipper
from orch.agents.settings import AgentSettings
from orch.agents.sources import Capacity

pytestmark = pytest.mark.unit


def test_capacity_never_hands_out_more_than_the_limit() -> None:
    capacity = Capacity(3)
    stop = threading.Event()
    got: list[int] = []
    lock = threading.Lock()

    def poller() -> None:
        n = capacity.acquire(10, stop, timeout=0.2)
        with lock:
            got.append(n)

    threads = [threading.Thread(target=poller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(got) == 3
    assert capacity.acquire(1, stop, timeout=0.05) == 0
    capacity.unreserve(1)
    assert capacity.acquire(5, stop, timeout=0.05) == 1
    stop.set()
    assert capacity.acquire(5, stop) == 0


def test_capacity_counts_running_runs() -> None:
    capacity = Capacity(1)
    stop = threading.Event()
    assert capacity.acquire(1, stop) == 1
    capacity.started()
    capacity.unreserve()
    assert capacity.acquire(1, stop, timeout=0.05) == 0
    capacity.finished()
    assert capacity.acquire(1, stop, timeout=0.05) == 1


def test_output_is_cut_into_lines_per_stream_with_levels() -> None:
    shipped: list[dict[str, Any]] = []
    out = OutputShipper(shipped.extend, "run-1", "process")
    out.feed(b"hel", "stdout")
    out.feed(b"Traceback (most\n", "stderr")
    out.feed(b"lo\n\nwor", "stdout")
    out.feed(b"ld", "stdout")
    out.flush(final=True)
    assert [(r["name"], r["level"], r["message"]) for r in shipped] == [
        ("orch.process.stderr", 30, "Traceback (most"),
        ("orch.process.stdout", 20, "hello"),
        ("orch.process.stdout", 20, "world"),
    ]
    assert {r["flow_run_id"] for r in shipped} == {"run-1"}


def test_output_shipping_failures_do_not_raise() -> None:
    def broken(_: list[dict[str, Any]]) -> None:
        raise OSError("control plane down")

    out = OutputShipper(broken, "run-1", "docker")
    out.feed(b"a\n" * 150)
    out.flush(final=True)


def test_settings_split_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_ECS_SUBNETS", "subnet-1, subnet-2,")
    monkeypatch.setenv("ORCH_ECS_SECURITY_GROUPS", "sg-1")
    monkeypatch.setenv("ORCH_AGENT_CLAIM_DELAY", "1.5")
    settings = AgentSettings()
    assert settings.ecs_subnets == ["subnet-1", "subnet-2"]
    assert settings.ecs_security_groups == ["sg-1"]
    assert settings.agent_claim_delay == 1.5
    assert settings.docker_image.startswith("orch/orch:")


def test_sqs_long_poll_waits_20_seconds_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's ``WaitTimeSeconds=20`` (SQS's longest long poll); more is refused, as SQS would refuse it."""
    monkeypatch.delenv("ORCH_AGENT_SQS_WAIT_SECONDS", raising=False)
    assert AgentSettings().agent_sqs_wait_seconds == 20
    monkeypatch.setenv("ORCH_AGENT_SQS_WAIT_SECONDS", "21")
    with pytest.raises(ValueError, match="20"):
        AgentSettings()
