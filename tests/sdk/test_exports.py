"""The public surface: what ``orch`` exports, where names live, and that ``import orch`` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import orch

pytestmark = pytest.mark.unit


def test_export_list_is_pinned() -> None:
    assert sorted(orch.__all__) == sorted(
        [
            "Flow",
            "State",
            "Task",
            "__version__",
            "allow_failure",
            "flow",
            "get_client",
            "get_run_logger",
            "tags",
            "task",
            "unmapped",
        ]
    )
    for name in orch.__all__:
        assert getattr(orch, name) is not None


def test_names_live_where_prefect_puts_them() -> None:
    from orch import cache_policies, context, futures, logging, runtime, states, task_runners, tasks
    from orch.flows import Flow

    assert orch.get_run_logger is logging.get_run_logger
    assert Flow is orch.Flow
    assert tasks.Task is orch.Task
    assert states.State is orch.State
    assert callable(tasks.exponential_backoff)
    for name in ("wait", "as_completed", "OrchFuture"):
        assert hasattr(futures, name)
    for name in ("INPUTS", "TASK_SOURCE", "FLOW_PARAMETERS", "RUN_ID", "NO_CACHE", "DEFAULT"):
        assert hasattr(cache_policies, name)
    for name in ("ThreadPoolTaskRunner", "ProcessPoolTaskRunner", "DaskTaskRunner"):
        assert hasattr(task_runners, name)
    for name in ("get_run_context", "FlowRunContext", "TaskRunContext"):
        assert hasattr(context, name)
    assert runtime.flow_run.id is None
    assert runtime.task_run.id is None
    for name in states.__all__:
        assert hasattr(states, name)
    with pytest.raises(AttributeError):
        orch.no_such_name  # noqa: B018


def test_import_orch_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, orch\n"
        "heavy = [m for m in ('pydantic', 'sqlalchemy', 'fastapi', 'httpx', 'boto3', 'orch.control_plane',"
        " 'orch.client', 'cloudpickle') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_defining_flows_and_tasks_loads_no_heavy_dependency() -> None:
    code = (
        "import sys\nfrom orch import flow, task\n"
        "@task\ndef t(x): return x\n"
        "@flow\ndef f(): return t(1)\n"
        "print([m for m in ('pydantic', 'sqlalchemy', 'fastapi', 'httpx', 'boto3', 'asyncio') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
