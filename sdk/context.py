"""Run contexts: what the code running inside a flow or task can ask about the run it belongs to.

The engines set a :class:`FlowRunContext` for the body of a flow run and a :class:`TaskRunContext` for the body of a
task run, in context variables, so they follow threads started with ``contextvars.copy_context()`` (the thread
runner does that) and never leak between concurrent runs. ``get_run_context()`` returns the innermost one.
``orch.tags(...)`` adds tags to every run created inside its ``with`` block.

A context that travels to a worker process (process pool, Dask) is a copy without the parts that only make sense in
the parent (the task runner, the flow object); its recorder is a collector whose records go back with the result.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orch._engine.recorder import RecorderLike
    from orch.flows import Flow
    from orch.results import ResultOptions
    from orch.task_runners import TaskRunner
    from orch.tasks import Task

__all__ = ["FlowRunContext", "TaskRunContext", "get_run_context", "tags"]


@dataclasses.dataclass(eq=False, slots=True)
class FlowRunContext:
    """The flow run whose body is executing."""

    flow_run_id: uuid.UUID
    flow_run_name: str
    flow_name: str
    parameters: dict[str, Any]
    recorder: RecorderLike
    result_options: ResultOptions
    flow: Flow[..., Any] | None = None
    task_runner: TaskRunner | None = None
    run_count: int = 1
    scheduled_start_time: dt.datetime | None = None
    log_prints: bool = False
    # Set when the control plane says the run is being cancelled; the next task call stops the flow.
    cancel_event: threading.Event | None = None
    # dynamic_key counters: task_key -> number of runs of that task so far in this flow run.
    task_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    counts_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def next_dynamic_key(self, task_key: str) -> str:
        with self.counts_lock:
            n = self.task_counts.get(task_key, 0)
            self.task_counts[task_key] = n + 1
        return str(n)

    def for_worker(self, recorder: RecorderLike) -> FlowRunContext:
        """A picklable copy for a worker process, recording into ``recorder``."""
        return FlowRunContext(
            flow_run_id=self.flow_run_id,
            flow_run_name=self.flow_run_name,
            flow_name=self.flow_name,
            parameters=self.parameters,
            recorder=recorder,
            result_options=self.result_options,
            run_count=self.run_count,
            scheduled_start_time=self.scheduled_start_time,
            log_prints=self.log_prints,
        )

    def __getstate__(self) -> dict[str, Any]:
        # Locks and events do not pickle; a worker gets fresh ones.
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _LOCAL_FIELDS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for f in dataclasses.fields(self):
            if f.name in state:
                object.__setattr__(self, f.name, state[f.name])
        self.task_counts = {}
        self.counts_lock = threading.Lock()
        self.cancel_event = None
        self.task_runner = None
        self.flow = None


_LOCAL_FIELDS = frozenset({"counts_lock", "cancel_event", "task_runner", "flow", "task_counts"})


@dataclasses.dataclass(eq=False, slots=True)
class TaskRunContext:
    """The task run whose body is executing."""

    task: Task[..., Any]
    task_run_id: uuid.UUID
    task_run_name: str
    parameters: dict[str, Any]
    flow_run: FlowRunContext | None
    run_count: int = 1
    log_prints: bool = False


flow_run_var: contextvars.ContextVar[FlowRunContext | None] = contextvars.ContextVar("orch_flow_run", default=None)
task_run_var: contextvars.ContextVar[TaskRunContext | None] = contextvars.ContextVar("orch_task_run", default=None)
tags_var: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("orch_tags", default=frozenset())


def get_run_context() -> FlowRunContext | TaskRunContext:
    """The innermost run context; raises ``RuntimeError`` outside any flow or task run."""
    task_ctx = task_run_var.get()
    if task_ctx is not None:
        return task_ctx
    flow_ctx = flow_run_var.get()
    if flow_ctx is not None:
        return flow_ctx
    raise RuntimeError("No run context: get_run_context() works only inside a flow or a task run.")


@contextlib.contextmanager
def tags(*names: str) -> Iterator[frozenset[str]]:
    """Add ``names`` to the tags of every flow and task run created inside the block (blocks nest)."""
    current = tags_var.get() | frozenset(names)
    token = tags_var.set(current)
    try:
        yield current
    finally:
        tags_var.reset(token)
