"""Task runners: where ``task.submit()`` runs a task — threads, processes, or a Dask cluster.

A flow run gets its own copy of its flow's runner (``duplicate()``), started on the first ``submit`` and shut
down — waiting for what is still running — when the flow run ends.

* :class:`ThreadPoolTaskRunner` (the default): a thread pool in this process; each task runs in a copy of the
  submitting context, so run contexts, tags and ``log_prints`` follow it.
* :class:`ProcessPoolTaskRunner`: a pool of ``spawn``-ed processes.
* :class:`DaskTaskRunner`: a ``dask.distributed`` cluster — a ``LocalCluster`` it creates, or an existing scheduler
  at ``address``.

For the last two the task, its resolved arguments and a copy of the flow-run context travel to the worker
cloudpickled; the worker runs the task engine with a collecting recorder and sends back the final state together
with the task run's states and log lines, which are replayed into this process's recorder. Arguments that are
futures are waited for here first (in callbacks, so ``submit`` never blocks).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orch._annotations import allow_failure, unmapped
from orch._engine.recorder import fast_uuid7
from orch.futures import OrchFuture

if TYPE_CHECKING:
    from orch.context import FlowRunContext
    from orch.states import State
    from orch.tasks import Task

__all__ = ["DaskTaskRunner", "ProcessPoolTaskRunner", "TaskRunner", "ThreadPoolTaskRunner"]


class TaskRunner:
    """Base class: ``submit`` returns an :class:`~orch.futures.OrchFuture` for one task run."""

    def duplicate(self) -> TaskRunner:
        """A fresh, unstarted runner with the same settings (one per flow run)."""
        raise NotImplementedError

    def submit(
        self,
        task: Task[..., Any],
        params: dict[str, Any],
        flow_ctx: FlowRunContext | None,
        wait_for: Any = None,
    ) -> OrchFuture[Any]:
        raise NotImplementedError

    def shutdown(self, wait: bool = True) -> None:
        """Release the workers; with ``wait``, after the submitted runs finished."""

    def __enter__(self) -> TaskRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _keys(task: Task[..., Any], flow_ctx: FlowRunContext | None) -> tuple[uuid.UUID, str]:
    dynamic_key = flow_ctx.next_dynamic_key(task.task_key) if flow_ctx is not None else "0"
    return fast_uuid7(), dynamic_key


class ThreadPoolTaskRunner(TaskRunner):
    """Runs submitted tasks in a thread pool of ``max_workers`` threads (default: Python's default size)."""

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}.")
        self.max_workers = max_workers
        self._executor: cf.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def duplicate(self) -> ThreadPoolTaskRunner:
        return type(self)(self.max_workers)

    def _pool(self) -> cf.ThreadPoolExecutor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = cf.ThreadPoolExecutor(self.max_workers, thread_name_prefix="orch-task")
        return self._executor

    def submit(
        self,
        task: Task[..., Any],
        params: dict[str, Any],
        flow_ctx: FlowRunContext | None,
        wait_for: Any = None,
    ) -> OrchFuture[Any]:
        from orch._engine.task_engine import run_task_blocking

        run_id, dynamic_key = _keys(task, flow_ctx)
        ctx = contextvars.copy_context()
        inner = self._pool().submit(ctx.run, run_task_blocking, task, params, flow_ctx, wait_for, run_id, dynamic_key)
        return OrchFuture(run_id, inner)

    def shutdown(self, wait: bool = True) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=wait)
            self._executor = None


class _RemoteTaskRunner(TaskRunner):
    """Shared logic of runners whose workers are other processes (see the module docstring)."""

    _outstanding: set[cf.Future[Any]]

    def _track(self, future: cf.Future[Any]) -> None:
        if not hasattr(self, "_outstanding"):
            self._outstanding = set()
        self._outstanding.add(future)
        future.add_done_callback(self._outstanding.discard)

    def _wait_outstanding(self) -> None:
        """Wait until every submitted run's answer was replayed into the recorder."""
        cf.wait(list(getattr(self, "_outstanding", ())))

    def _submit_payload(self, payload: bytes, done: Callable[[Any], None]) -> None:
        """Send ``payload`` to a worker; call ``done(result_bytes_or_exception)`` when it answers."""
        raise NotImplementedError

    def submit(
        self,
        task: Task[..., Any],
        params: dict[str, Any],
        flow_ctx: FlowRunContext | None,
        wait_for: Any = None,
    ) -> OrchFuture[Any]:
        from orch._engine import task_engine
        from orch.futures import UpstreamTaskError, resolve_inputs, wait_for_upstreams

        run_id, dynamic_key = _keys(task, flow_ctx)
        outer: cf.Future[State] = cf.Future()
        outer.set_running_or_notify_cancel()
        self._track(outer)

        def finish(answer: Any) -> None:
            try:
                if isinstance(answer, BaseException):
                    raise answer
                outer.set_result(task_engine.unpack_worker_answer(answer, flow_ctx))
            except BaseException as exc:
                outer.set_exception(exc)

        def go() -> None:
            try:
                if wait_for:
                    wait_for_upstreams(wait_for)
                resolved, _ = resolve_inputs(params)
            except UpstreamTaskError:
                # Let the engine record the NotReady state here, as it would for a local run.
                outer.set_result(task_engine.run_task(task, params, flow_ctx, wait_for, run_id, dynamic_key))
                return
            try:
                payload = task_engine.task_payload(task, resolved, flow_ctx, run_id, dynamic_key)
                self._submit_payload(payload, finish)
            except BaseException as exc:
                outer.set_exception(exc)

        upstream = _futures_in([params, wait_for])
        if not upstream:
            go()
        else:
            remaining = [len(upstream)]
            lock = threading.Lock()

            def one_done(_: Any) -> None:
                with lock:
                    remaining[0] -= 1
                    last = remaining[0] == 0
                if last:
                    go()

            for future in upstream:
                future._future.add_done_callback(one_done)
        return OrchFuture(run_id, outer)


def _futures_in(value: Any, found: list[OrchFuture[Any]] | None = None) -> list[OrchFuture[Any]]:
    found = [] if found is None else found
    if isinstance(value, OrchFuture):
        found.append(value)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _futures_in(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _futures_in(item, found)
    elif isinstance(value, allow_failure | unmapped):
        _futures_in(value.value, found)
    return found


class ProcessPoolTaskRunner(_RemoteTaskRunner):
    """Runs submitted tasks in ``max_workers`` spawned processes (task bodies must be cloudpicklable)."""

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}.")
        self.max_workers = max_workers
        self._executor: cf.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def duplicate(self) -> ProcessPoolTaskRunner:
        return type(self)(self.max_workers)

    def _submit_payload(self, payload: bytes, done: Callable[[Any], None]) -> None:
        import multiprocessing

        from orch._engine.task_engine import run_task_in_worker

        with self._lock:
            if self._executor is None:
                self._executor = cf.ProcessPoolExecutor(
                    self.max_workers, mp_context=multiprocessing.get_context("spawn")
                )
            executor = self._executor
        future = executor.submit(run_task_in_worker, payload)
        future.add_done_callback(lambda f: done(f.exception() or f.result()))

    def shutdown(self, wait: bool = True) -> None:
        if wait:
            self._wait_outstanding()
        if self._executor is not None:
            self._executor.shutdown(wait=wait)
            self._executor = None


class DaskTaskRunner(_RemoteTaskRunner):
    """Runs submitted tasks on Dask: a new ``LocalCluster(**cluster_kwargs)``, or the scheduler at ``address``."""

    def __init__(
        self,
        address: str | None = None,
        cluster_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.address = address
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.client_kwargs = dict(client_kwargs or {})
        self._client: Any = None
        self._cluster: Any = None
        self._lock = threading.Lock()

    def duplicate(self) -> DaskTaskRunner:
        return type(self)(self.address, self.cluster_kwargs, self.client_kwargs)

    def _dask(self) -> Any:
        with self._lock:
            if self._client is None:
                from distributed import Client, LocalCluster

                if self.address is None:
                    self._cluster = LocalCluster(**self.cluster_kwargs)
                    self._client = Client(self._cluster, **self.client_kwargs)
                else:
                    self._client = Client(self.address, **self.client_kwargs)
            return self._client

    def _submit_payload(self, payload: bytes, done: Callable[[Any], None]) -> None:
        from orch._engine.task_engine import run_task_in_worker

        future = self._dask().submit(run_task_in_worker, payload, pure=False)

        def callback(f: Any) -> None:
            try:
                done(f.result())
            except BaseException as exc:
                done(exc)

        future.add_done_callback(callback)

    def shutdown(self, wait: bool = True) -> None:
        if wait:
            # First: runs still waiting for upstreams submit when those finish, and need the client for that.
            self._wait_outstanding()
        with self._lock:
            client, cluster = self._client, self._cluster
            self._client = self._cluster = None
        if client is None:
            return
        client.close()
        if cluster is not None:
            cluster.close()
