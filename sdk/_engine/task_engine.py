"""The task engine: runs one task run — inputs, cache, attempts with retries and timeout, result, hooks, states.

Task runs are client-orchestrated: this module decides every state itself and hands the states to the recorder
(one ``deque.append`` per batch of states); nothing here touches the network or builds a pydantic model. A task
run goes ``Pending → Running → Completed`` (or ``Cached`` straight from ``Pending``); a failure with retries left
goes ``→ AwaitingRetry`` (its ``scheduled_time`` is when the next attempt starts) ``→ Retrying → ...``; the last
failure is ``Failed`` (``TimedOut`` when ``timeout_seconds`` passed).

:class:`TaskRun` holds the steps; :func:`run_task` drives them for a sync task and :func:`run_task_async` for an
async one. :func:`run_task_in_worker` is the entry point in a worker process (process pool, Dask): the task's
records are collected there and shipped back with its final state.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import datetime as dt
import logging
import random
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from orch._engine.recorder import CollectingRecorder, TaskRunInfo, fast_uuid7, get_recorder
from orch.context import FlowRunContext, TaskRunContext, flow_run_var, tags_var, task_run_var
from orch.futures import UpstreamTaskError, resolve_inputs, wait_for_upstreams
from orch.states import State, StateType

if TYPE_CHECKING:
    from orch.tasks import Task

logger = logging.getLogger("orch.task_engine")

_PENDING = StateType.PENDING
_RUNNING = StateType.RUNNING
_COMPLETED = StateType.COMPLETED


class TaskCancelled(Exception):
    """Raised into a task call when its flow run is being cancelled."""


class TaskRun:
    """One task run's steps, shared by the sync and async drivers."""

    __slots__ = (
        "final_state",
        "flow_ctx",
        "info",
        "log_prints",
        "params",
        "pending",
        "raw_params",
        "recorder",
        "result_options",
        "task",
        "task_ctx",
        "wait_for",
    )

    def __init__(
        self,
        task: Task[..., Any],
        params: dict[str, Any],
        flow_ctx: FlowRunContext | None,
        wait_for: Any = None,
        task_run_id: uuid.UUID | None = None,
        dynamic_key: str | None = None,
    ) -> None:
        self.task = task
        self.raw_params = params
        self.params = params
        self.flow_ctx = flow_ctx
        self.wait_for = wait_for
        if dynamic_key is None:
            dynamic_key = flow_ctx.next_dynamic_key(task.task_key) if flow_ctx is not None else "0"
        extra_tags = tags_var.get()
        self.info = TaskRunInfo(
            task_run_id or fast_uuid7(),
            flow_ctx.flow_run_id if flow_ctx is not None else None,
            task.task_key,
            dynamic_key,
            f"{task.name}-{dynamic_key}",
            task.tags_list if not extra_tags else sorted(extra_tags.union(task.tags_list)),
            {},
        )
        if flow_ctx is not None:
            self.recorder = flow_ctx.recorder
            self.result_options = flow_ctx.result_options.merged(
                task.persist_result, task.result_storage, task.result_serializer
            )
            self.log_prints = flow_ctx.log_prints if task.log_prints is None else task.log_prints
        else:
            from orch.results import ResultOptions

            self.recorder = get_recorder()
            self.result_options = ResultOptions(
                task.persist_result, task.result_storage, task.result_serializer or "cloudpickle"
            )
            self.log_prints = bool(task.log_prints)
        self.pending = State(_PENDING)
        self.task_ctx: TaskRunContext | None = None
        self.final_state: State | None = None

    # -- steps ---------------------------------------------------------------------------------------------------

    def begin(self) -> State | None:
        """Resolve inputs and look up the cache; a final state when the task need not run."""
        flow_ctx = self.flow_ctx
        try:
            if flow_ctx is not None and flow_ctx.cancel_event is not None and flow_ctx.cancel_event.is_set():
                raise TaskCancelled("The flow run is being cancelled.")
            if self.wait_for:
                self.info.task_inputs["wait_for"] = wait_for_upstreams(self.wait_for)
            self.params, inputs = resolve_inputs(self.raw_params)
            if inputs:
                self.info.task_inputs.update(inputs)
        except UpstreamTaskError as exc:
            from orch.states import Failed

            return self._final(Failed(exc, name="NotReady"), [self.pending])
        except TaskCancelled as exc:
            from orch.states import Cancelled

            return self._final(Cancelled(str(exc), exc), [self.pending])
        self.task_ctx = TaskRunContext(
            self.task, self.info.id, self.info.name, self.params, flow_ctx, 0, self.log_prints
        )
        task = self.task
        if task.caching or self.result_options.persist:
            return self._lookup_cache()
        return None

    def _lookup_cache(self) -> State | None:
        from orch import results

        task = self.task
        if not task.caching:
            return None
        flow_params = self.flow_ctx.parameters if self.flow_ctx is not None else {}
        assert self.task_ctx is not None
        try:
            key = task.effective_cache_policy.compute_key(self.task_ctx, self.params, flow_params)
        except Exception as exc:
            logger.warning("Task %r: could not compute a cache key (%s); running without cache.", task.name, exc)
            return None
        if key is None:
            return None
        info = self.info
        info.cache_key = key
        if task.cache_expiration is not None:
            info.cache_expiration = dt.datetime.now(dt.UTC) + task.cache_expiration
        if task.refresh_cache:
            return None
        try:
            found, value, ref = results.lookup(self.result_options, key)
        except Exception as exc:
            logger.warning("Task %r: cache lookup failed (%s); running the task.", task.name, exc)
            return None
        if not found:
            return None
        from orch.states import Cached

        state = Cached(value, data=ref)
        state.details = {"cache_key": key}
        return self._final(state, [self.pending])

    def start_attempt(self) -> None:
        info = self.info
        info.run_count += 1
        assert self.task_ctx is not None
        self.task_ctx.run_count = info.run_count
        if info.run_count == 1:
            self.recorder.task_run(info, [self.pending, State(_RUNNING)])
        else:
            self.recorder.task_run(info, [State(_RUNNING, "Retrying")])
        if self.task.on_running:
            self._hooks(self.task.on_running, State(_RUNNING))

    def succeeded(self, value: Any) -> State:
        data = None
        if self.result_options.persist or self.info.cache_key is not None:
            data = self._persist(value)
        state = State(_COMPLETED, None, None, result=value, data=data)
        if self.info.cache_key is not None:
            state.details = {"cache_key": self.info.cache_key}
        return self._final(state, ())

    def _persist(self, value: Any) -> dict[str, Any] | None:
        from orch import results

        key = self.info.cache_key or self.info.id.hex
        try:
            return results.persist(self.result_options, key, value, self.info.cache_expiration)
        except Exception as exc:
            logger.warning("Task %r: could not persist its result (%s).", self.task.name, exc)
            return None

    def failed(self, exc: BaseException, timed_out: bool = False) -> float | None:
        """Record a failed attempt: the delay before the next attempt, or ``None`` when the run has failed."""
        from orch.states import Failed, TimedOut

        if isinstance(exc, TaskCancelled):
            from orch.states import Cancelled

            self._final(Cancelled(str(exc), exc), ())
            return None
        state = TimedOut(exc) if timed_out else Failed(exc)
        task, info = self.task, self.info
        if info.run_count <= task.retries and self._should_retry(state):
            delay = task.retry_delay_for(info.run_count)
            retry = State(StateType.SCHEDULED, "AwaitingRetry", state.message)
            when = retry.timestamp + dt.timedelta(seconds=delay)
            retry.details = {"scheduled_time": when.isoformat(), **(state.details or {})}
            self.recorder.task_run(info, [retry])
            self._log(
                logging.WARNING,
                "Task run failed with %s - retry %d/%d starts in %.3g second(s).",
                state.message,
                info.run_count,
                task.retries,
                delay,
            )
            return delay
        self._log(logging.ERROR, "Task run failed with %s - finished in state %s.", state.message, state.name)
        self._final(state, ())
        return None

    def _log(self, level: int, message: str, *args: Any) -> None:
        # Failures only: the common path logs nothing, so it costs nothing.
        from orch.logging import task_logger

        if self.task_ctx is not None:
            task_logger(self.task_ctx).log(level, message, *args)

    def _should_retry(self, state: State) -> bool:
        condition = self.task.retry_condition_fn
        if condition is None:
            return True
        try:
            return bool(condition(self.task, self.info, state))
        except Exception as exc:
            logger.warning("Task %r: retry_condition_fn raised %r; not retrying.", self.task.name, exc)
            return False

    def crashed(self, exc: BaseException) -> State:
        from orch.states import Crashed

        return self._final(Crashed(exc), ())

    def _final(self, state: State, before: Any) -> State:
        self.recorder.task_run(self.info, [*before, state])
        self.final_state = state
        task = self.task
        hooks = task.on_completion if state.type is _COMPLETED else task.on_failure if state.is_failed() else None
        if hooks:
            self._hooks(hooks, state)
        return state

    def _hooks(self, hooks: list[Any], state: State) -> None:
        for hook in hooks:
            try:
                hook(self.task, self.info, state)
            except Exception:
                logger.exception("Task %r: hook %r raised; the run's state is unchanged.", self.task.name, hook)

    def enter(self) -> tuple[contextvars.Token[TaskRunContext | None], Any]:
        token = task_run_var.set(self.task_ctx)
        prints = None
        if self.log_prints:
            from orch.logging import redirect_prints, task_logger

            assert self.task_ctx is not None
            prints = redirect_prints(task_logger(self.task_ctx))
        elif self.flow_ctx is not None and self.flow_ctx.log_prints:
            from orch.logging import redirect_prints

            prints = redirect_prints(None)
        return token, prints

    def exit(self, tokens: tuple[contextvars.Token[TaskRunContext | None], Any]) -> None:
        token, prints = tokens
        if prints is not None:
            from orch.logging import restore_prints

            restore_prints(prints)
        task_run_var.reset(token)


def _call_with_timeout(run: TaskRun, timeout: float) -> Any:
    """Run the body in a helper thread and stop waiting after ``timeout`` (the thread cannot be killed)."""
    future: cf.Future[Any] = cf.Future()
    ctx = contextvars.copy_context()

    def body() -> None:
        try:
            future.set_result(run.task.binder.call(run.task.fn, run.params))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=ctx.run, args=(body,), daemon=True, name=f"orch-task-{run.info.name}").start()
    try:
        return future.result(timeout)
    except cf.TimeoutError:
        raise TimeoutError(f"Task run {run.info.name!r} exceeded its timeout of {timeout} seconds.") from None


def run_task(
    task: Task[..., Any],
    params: dict[str, Any],
    flow_ctx: FlowRunContext | None,
    wait_for: Any = None,
    task_run_id: uuid.UUID | None = None,
    dynamic_key: str | None = None,
) -> State:
    """Run a sync task to its final state (which it returns; it never raises an ``Exception``)."""
    run = TaskRun(task, params, flow_ctx, wait_for, task_run_id, dynamic_key)
    state = run.begin()
    if state is not None:
        return state
    timeout = task.timeout_seconds
    while True:
        run.start_attempt()
        tokens = run.enter()
        try:
            value = task.binder.call(task.fn, run.params) if timeout is None else _call_with_timeout(run, timeout)
        except Exception as exc:
            run.exit(tokens)
            delay = run.failed(exc, timed_out=timeout is not None and isinstance(exc, TimeoutError))
            if delay is None:
                assert run.final_state is not None
                return run.final_state
            if delay > 0:
                time.sleep(delay)
            continue
        except BaseException as exc:
            run.exit(tokens)
            run.crashed(exc)
            raise
        run.exit(tokens)
        return run.succeeded(value)


async def run_task_async(
    task: Task[..., Any],
    params: dict[str, Any],
    flow_ctx: FlowRunContext | None,
    wait_for: Any = None,
    task_run_id: uuid.UUID | None = None,
    dynamic_key: str | None = None,
) -> State:
    """Run an async task to its final state."""
    run = TaskRun(task, params, flow_ctx, wait_for, task_run_id, dynamic_key)
    state = run.begin()
    if state is not None:
        return state
    timeout = task.timeout_seconds
    while True:
        run.start_attempt()
        tokens = run.enter()
        try:
            coro = task.binder.call(task.fn, run.params)
            value = await (coro if timeout is None else asyncio.wait_for(coro, timeout))
        except Exception as exc:
            run.exit(tokens)
            timed_out = timeout is not None and isinstance(exc, TimeoutError)
            if timed_out:
                exc = TimeoutError(f"Task run {run.info.name!r} exceeded its timeout of {timeout} seconds.")
            delay = run.failed(exc, timed_out=timed_out)
            if delay is None:
                assert run.final_state is not None
                return run.final_state
            if delay > 0:
                await asyncio.sleep(delay)
            continue
        except BaseException as exc:
            run.exit(tokens)
            run.crashed(exc)
            raise
        run.exit(tokens)
        return run.succeeded(value)


def run_task_blocking(
    task: Task[..., Any],
    params: dict[str, Any],
    flow_ctx: FlowRunContext | None,
    wait_for: Any = None,
    task_run_id: uuid.UUID | None = None,
    dynamic_key: str | None = None,
) -> State:
    """Run a sync or async task to completion in this thread (used by runners)."""
    if task.is_async:
        return asyncio.run(run_task_async(task, params, flow_ctx, wait_for, task_run_id, dynamic_key))
    return run_task(task, params, flow_ctx, wait_for, task_run_id, dynamic_key)


# -- worker processes ------------------------------------------------------------------------------------------


def run_task_in_worker(payload: bytes) -> bytes:
    """Entry point in a process-pool or Dask worker: run the task, ship back its final state and its records."""
    import pickle

    import cloudpickle

    task, params, flow_ctx, task_run_id, dynamic_key = pickle.loads(payload)  # noqa: S301 - our own payload
    collector = CollectingRecorder()
    worker_ctx = flow_ctx.for_worker(collector) if flow_ctx is not None else None
    token = flow_run_var.set(worker_ctx)
    try:
        state = run_task_blocking(task, params, worker_ctx, None, task_run_id, dynamic_key)
    finally:
        flow_run_var.reset(token)
    try:
        return cloudpickle.dumps((state, collector.items))
    except Exception as exc:
        # The result (or the exception) cannot travel back: the run fails with a message saying why.
        from orch.states import Failed

        failed = Failed(TypeError(f"The task's result could not be pickled to send it back: {exc}"))
        items: list[Any] = []
        for item in collector.items:
            if type(item) is tuple and any(s is state for s in item[1]):
                item = (item[0], [s for s in item[1] if s is not state] + [failed])
            items.append(item)
        return cloudpickle.dumps((failed, items))


def task_payload(
    task: Task[..., Any],
    params: dict[str, Any],
    flow_ctx: FlowRunContext | None,
    task_run_id: uuid.UUID,
    dynamic_key: str,
) -> bytes:
    import cloudpickle

    # The context travels without this process's recorder, runner and locks; the worker records into a collector.
    worker_ctx = flow_ctx.for_worker(CollectingRecorder()) if flow_ctx is not None else None
    return cloudpickle.dumps((task, params, worker_ctx, task_run_id, dynamic_key))


def unpack_worker_answer(answer: bytes, flow_ctx: FlowRunContext | None) -> State:
    """Replay a worker's records into this process's recorder and return the task's final state."""
    import pickle

    state, items = pickle.loads(answer)  # noqa: S301 - our own payload
    collector = CollectingRecorder()
    collector.items = items
    collector.replay(flow_ctx.recorder if flow_ctx is not None else get_recorder())
    return state


def jitter(delay: float, factor: float | None) -> float:
    """``delay`` stretched by up to ``factor`` times itself, at random (spreads retries of many runs apart)."""
    if not factor or delay <= 0:
        return delay
    return delay * (1 + random.uniform(0, factor))
