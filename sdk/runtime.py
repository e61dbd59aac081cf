"""Facts about the current run, readable anywhere inside it (Prefect's ``prefect.runtime``)::

    from orch import runtime

    runtime.flow_run.id, runtime.flow_run.name, runtime.flow_run.parameters, runtime.flow_run.run_count,
    runtime.flow_run.scheduled_start_time, runtime.task_run.id, runtime.task_run.name, runtime.task_run.run_count

Outside a run every attribute is ``None`` (``parameters`` is ``{}``), so code can ask without checking first.
Ids are strings, as in Prefect.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from orch.context import flow_run_var, task_run_var

__all__ = ["flow_run", "task_run"]


class _FlowRun:
    """The flow run the calling code belongs to."""

    @property
    def id(self) -> str | None:
        ctx = flow_run_var.get()
        return str(ctx.flow_run_id) if ctx else None

    @property
    def name(self) -> str | None:
        ctx = flow_run_var.get()
        return ctx.flow_run_name if ctx else None

    @property
    def flow_name(self) -> str | None:
        ctx = flow_run_var.get()
        return ctx.flow_name if ctx else None

    @property
    def parameters(self) -> dict[str, Any]:
        ctx = flow_run_var.get()
        return dict(ctx.parameters) if ctx else {}

    @property
    def run_count(self) -> int | None:
        ctx = flow_run_var.get()
        return ctx.run_count if ctx else None

    @property
    def scheduled_start_time(self) -> dt.datetime | None:
        ctx = flow_run_var.get()
        return ctx.scheduled_start_time if ctx else None


class _TaskRun:
    """The task run the calling code belongs to."""

    @property
    def id(self) -> str | None:
        ctx = task_run_var.get()
        return str(ctx.task_run_id) if ctx else None

    @property
    def name(self) -> str | None:
        ctx = task_run_var.get()
        return ctx.task_run_name if ctx else None

    @property
    def task_name(self) -> str | None:
        ctx = task_run_var.get()
        return ctx.task.name if ctx else None

    @property
    def parameters(self) -> dict[str, Any]:
        ctx = task_run_var.get()
        return dict(ctx.parameters) if ctx else {}

    @property
    def run_count(self) -> int | None:
        ctx = task_run_var.get()
        return ctx.run_count if ctx else None


flow_run = _FlowRun()
task_run = _TaskRun()
