"""Run loggers, log_prints and the console format."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from orch import flow, get_run_logger, task
from orch.logging import ConsoleFormatter

pytestmark = pytest.mark.unit


def test_run_logs_carry_run_ids_and_reach_the_control_plane(read: Any) -> None:
    @task
    def work() -> None:
        get_run_logger().warning("from the task")

    @flow
    def f() -> None:
        get_run_logger().info("from the flow %s", "run")
        work()

    state = f(return_state=True)
    assert state.is_completed()
    [run] = read.flow_runs()
    [task_run] = read.task_runs(run.id)
    logs = {log.message: log for log in read.logs(run.id)}
    assert logs["from the flow run"].task_run_id is None
    assert logs["from the flow run"].level == logging.INFO
    assert logs["from the task"].task_run_id == task_run.id
    assert logs["from the task"].level == logging.WARNING
    assert logs["from the task"].name == "orch.task_runs"


def test_get_run_logger_outside_a_run_refuses() -> None:
    with pytest.raises(RuntimeError, match="no active flow or task run"):
        get_run_logger()


def test_log_prints_captures_prints_of_that_run_only(read: Any, capsys: pytest.CaptureFixture[str]) -> None:
    printed_elsewhere = threading.Event()

    def other_thread() -> None:
        print("not part of any run")
        printed_elsewhere.set()

    @task(log_prints=False)
    def quiet() -> None:
        print("task opted out")

    @task
    def inherits() -> None:
        print("task inherits")

    @flow(log_prints=True)
    def chatty() -> None:
        print("hello", "world", sep=", ")
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        quiet()
        inherits()
        inherits.submit().wait()

    @flow
    def silent() -> None:
        print("plain print")

    chatty()
    silent()
    out = capsys.readouterr().out
    assert "not part of any run" in out
    assert "task opted out" in out
    assert "plain print" in out
    assert "hello, world" not in out
    runs = {r.name: r for r in read.flow_runs()}
    messages = sorted(
        log.message for run in runs.values() for log in read.logs(run.id) if not _engine_message(log.message)
    )
    assert messages == ["hello, world", "task inherits", "task inherits"]


def _engine_message(message: str) -> bool:
    return message.startswith(("Beginning flow run", "Finished in state"))


def test_engine_logs_the_start_and_end_of_a_flow_run_and_task_failures(read: Any) -> None:
    @task(retries=1)
    def bad() -> None:
        raise ValueError("nope")

    @flow
    def f() -> None:
        bad(return_state=True)

    f()
    [run] = read.flow_runs()
    logs = read.logs(run.id)
    text = [log.message for log in logs]
    assert text[0] == f"Beginning flow run {run.name!r} for flow 'f'"
    assert text[-1] == "Finished in state Completed()"
    assert "Task run failed with ValueError: nope - retry 1/1 starts in 0 second(s)." in text
    assert "Task run failed with ValueError: nope - finished in state Failed." in text
    assert {log.level for log in logs if log.message.startswith("Task run failed")} == {30, 40}


def test_console_format() -> None:
    record = logging.LogRecord("orch.flow_runs", logging.INFO, __file__, 1, "hi %s", ("there",), None)
    record.orch_run_label = "Flow run 'brave-otter'"
    text = ConsoleFormatter().format(record)
    stamp, level, rest = text.split(" | ")
    assert len(stamp) == len("12:34:56.789")
    assert stamp[2] == ":"
    assert stamp[8] == "."
    assert level == "INFO   "
    assert rest == "Flow run 'brave-otter' - hi there"
