"""The flow engine: runs one flow run, proposing each of its states to the control plane and obeying the answer.

Flow runs are server-orchestrated. The engine creates the run (already ``Running``, with ``empirical_policy`` carrying
the flow's retries), runs the body, and proposes the final state. Each answer is obeyed:

* ACCEPT — go on;
* REJECT with a state — take that state. The common case is the server turning ``Failed`` (retries left) into
  ``AwaitingRetry`` with a ``scheduled_time``: the engine sleeps until then, proposes ``Running`` named
  ``Retrying`` and runs the body again;
* WAIT — sleep ``details.delay_seconds`` and propose again;
* ABORT — stop and raise :class:`~orch.exceptions.FlowRunAborted`.

The final state follows Prefect's rule: ``Failed`` when an exception escaped the body, or when the returned value
is (or contains) a state or future that did not complete; otherwise ``Completed``. ``KeyboardInterrupt`` and other
``BaseException``s make the run ``Crashed`` and are re-raised. A heartbeat thread tells the control plane the run
is alive and learns of a cancellation; the flow then stops at its next task call (``Cancelled``).

When the outermost flow run ends, the recorder is flushed so every task-run state and log line is on the server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import datetime as dt
import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from orch._engine import heartbeats
from orch._engine.gc_scope import flow_heap_frozen
from orch._engine.names import run_name
from orch._engine.parameters import jsonable
from orch._engine.recorder import TaskRunInfo, get_recorder
from orch.context import FlowRunContext, flow_run_var, tags_var, task_run_var
from orch.exceptions import FlowRunAborted, FlowTimeoutError, OrchError, ServerUnavailable
from orch.results import ResultOptions
from orch.states import State, StateType

if TYPE_CHECKING:
    from orch.flows import Flow

logger = logging.getLogger("orch.flow_engine")

# How many times a flow-run call is retried when the control plane is unreachable, and the first backoff.
_API_ATTEMPTS = 6
_API_BACKOFF = 0.5


_flow_ids: dict[tuple[int, str], tuple[Any, uuid.UUID]] = {}


def _flow_id(client: Any, name: str) -> uuid.UUID:
    """The flow's id on this client's control plane (get-or-create once per process and client)."""
    entry = _flow_ids.get((id(client), name))
    if entry is not None and entry[0] is client:
        return entry[1]
    flow_id: uuid.UUID = _api(client.create_flow, name).id
    _flow_ids[(id(client), name)] = (client, flow_id)
    return flow_id


def _api(call: Any, *args: Any, **kwargs: Any) -> Any:
    """A control-plane call, retried with backoff while the server is unreachable."""
    delay = _API_BACKOFF
    for attempt in range(_API_ATTEMPTS):
        try:
            return call(*args, **kwargs)
        except ServerUnavailable:
            if attempt == _API_ATTEMPTS - 1:
                raise
            logger.warning("orch: the control plane is unreachable; retrying in %.1f s.", delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


class FlowRunEngine:
    """One flow run's life (see the module docstring); the sync and async drivers share these steps."""

    def __init__(self, flow: Flow[..., Any], params: dict[str, Any]) -> None:
        from orch.client import get_client

        self.flow = flow
        self.params = params
        self.client = get_client()
        self.parent = flow_run_var.get()
        self.recorder = self.parent.recorder if self.parent is not None else get_recorder()
        self.flow_run_id = uuid.uuid4()
        self.flow_run: Any = None
        self.name = run_name(flow, params)
        self.tags = sorted(flow.tags | tags_var.get())
        self.parent_task: TaskRunInfo | None = None
        self.cancel_event = threading.Event()
        self.result_options = ResultOptions(
            flow.persist_result, flow.result_storage, flow.result_serializer or "cloudpickle"
        )
        if self.parent is not None:
            self.result_options = self.parent.result_options.merged(
                flow.persist_result, flow.result_storage, flow.result_serializer
            )
        self.run_count = 0
        self.ctx: FlowRunContext | None = None

    # -- the control plane ---------------------------------------------------------------------------------------

    def create(self) -> State:
        """Create the flow run, already ``Running``: a run started in this process has nothing to wait for or
        claim (``Pending`` is the state an agent's claim puts a deployed run in), and it saves a round trip."""
        from orch.control_plane.schemas.flow_runs import FlowRunCreate, RunPolicy
        from orch.control_plane.schemas.states import StateCreate
        from orch.control_plane.schemas.states import StateType as ApiStateType

        flow_id = _flow_id(self.client, self.flow.name)
        parent_task_run_id = None
        if self.parent is not None:
            dynamic_key = self.parent.next_dynamic_key(self.flow.name)
            calling_task = task_run_var.get()
            task_run_id = calling_task.task_run_id if calling_task is not None else None
            info = TaskRunInfo(
                uuid.uuid4(),
                self.parent.flow_run_id,
                f"subflow:{self.flow.name}"[:500],
                dynamic_key,
                f"{self.flow.name}-{dynamic_key}"[:200],
                self.tags,
                {"__parent_task_run__": [{"input_type": "task_run", "id": str(task_run_id)}]} if task_run_id else {},
            )
            info.run_count = 1
            self.parent_task = info
            parent_task_run_id = info.id
            details = {"child_flow_run_id": str(self.flow_run_id)}
            self.recorder.task_run(
                info, [State(StateType.PENDING, details=details), State(StateType.RUNNING, details=details)]
            )
        run = FlowRunCreate(
            id=self.flow_run_id,
            flow_id=flow_id,
            name=self.name,
            parameters=jsonable(self.params),
            tags=self.tags,
            state=StateCreate(type=ApiStateType.RUNNING),
            parent_task_run_id=parent_task_run_id,
            empirical_policy=RunPolicy(retries=self.flow.retries, retry_delay=self.flow.retry_delay_seconds),
        )
        self.flow_run = _api(self.client.create_flow_run, run)
        self.log(logging.INFO, "Beginning flow run %r for flow %r", self.name, self.flow.name)
        state = getattr(self.flow_run, "state", None)
        return State.from_api(state) if state is not None else State(StateType.RUNNING)

    def propose_once(self, state: State) -> tuple[State | None, float]:
        """Propose ``state``: ``(resulting state, 0)``, or ``(None, delay)`` when the server says WAIT."""
        from orch.control_plane.schemas.states import SetStateStatus, StateCreate

        answer = _api(self.client.set_flow_run_state, self.flow_run_id, StateCreate.model_validate(state.to_api()))
        status = answer.status
        if status is SetStateStatus.ACCEPT:
            if answer.state is not None and (answer.state.type != state.type or answer.state.name != state.name):
                return State.from_api(answer.state), 0.0
            return state, 0.0
        if status is SetStateStatus.WAIT:
            return None, float(answer.details.delay_seconds or 1.0)
        if status is SetStateStatus.ABORT:
            raise FlowRunAborted(answer.details.reason or "The control plane aborted the flow run.")
        # REJECT: the run is in the state the server answers with.
        if answer.state is None:
            raise OrchError(f"The control plane rejected {state.name!r} without a state: {answer.details.reason}")
        return State.from_api(answer.state), 0.0

    def propose(self, state: State) -> State:
        while True:
            answer, delay = self.propose_once(state)
            if answer is not None:
                return answer
            time.sleep(delay)
            state._ts = time.time()  # the state is entered now, not when it was first proposed

    async def propose_async(self, state: State) -> State:
        while True:
            answer, delay = self.propose_once(state)
            if answer is not None:
                return answer
            await asyncio.sleep(delay)
            state._ts = time.time()

    # -- the body ------------------------------------------------------------------------------------------------

    def enter(self) -> tuple[Any, ...]:
        self.run_count += 1
        flow = self.flow
        runner = flow.task_runner.duplicate() if flow.task_runner is not None else _thread_runner()
        self.ctx = FlowRunContext(
            flow_run_id=self.flow_run_id,
            flow_run_name=self.name,
            flow_name=flow.name,
            parameters=self.params,
            recorder=self.recorder,
            result_options=self.result_options,
            flow=flow,
            task_runner=runner,
            run_count=self.run_count,
            scheduled_start_time=getattr(self.flow_run, "expected_start_time", None),
            log_prints=flow.log_prints,
            cancel_event=self.cancel_event,
        )
        token = flow_run_var.set(self.ctx)
        task_token = task_run_var.set(None)
        prints = None
        from orch.logging import redirect_prints, setup_logging

        setup_logging()
        if flow.log_prints:
            from orch.logging import flow_logger

            prints = redirect_prints(flow_logger(self.ctx))
        elif self.parent is not None and self.parent.log_prints:
            prints = redirect_prints(None)
        return token, task_token, prints

    def exit(self, tokens: tuple[Any, ...]) -> None:
        token, task_token, prints = tokens
        assert self.ctx is not None
        runner = self.ctx.task_runner
        try:
            if runner is not None:
                runner.shutdown(wait=True)
        finally:
            if prints is not None:
                from orch.logging import restore_prints

                restore_prints(prints)
            task_run_var.reset(task_token)
            flow_run_var.reset(token)

    def outcome(self, value: Any) -> State:
        """The final state for a body that returned ``value`` (Prefect's rule; see the module docstring)."""
        from orch.futures import OrchFuture, _resolve
        from orch.states import Completed, Failed

        if isinstance(value, State):
            return value
        states = _states_in(value)
        bad = [s for s in states if s.type is not StateType.COMPLETED]
        if bad:
            first = bad[0]
            failed = Failed(first.result(raise_on_failure=False), message=f"{len(bad)}/{len(states)} states failed.")
            return failed
        if states or isinstance(value, OrchFuture):
            value = _resolve(value, False, [])
        data = None
        if self.result_options.persist:
            from orch import results

            try:
                data = results.persist(self.result_options, self.flow_run_id.hex, value)
            except Exception as exc:
                logger.warning("Flow %r: could not persist its result (%s).", self.flow.name, exc)
        return Completed(value, data=data)

    def failure(self, exc: BaseException) -> State:
        from orch.states import Cancelled, Failed, TimedOut

        if self.cancel_event.is_set():
            return Cancelled("The flow run was cancelled.", exc)
        if isinstance(exc, FlowTimeoutError):
            return TimedOut(exc)
        return Failed(exc)

    def hooks(self, state: State) -> None:
        flow = self.flow
        t = state.type
        hooks = (
            flow.on_completion
            if t is StateType.COMPLETED
            else flow.on_failure
            if t is StateType.FAILED
            else flow.on_cancellation
            if t is StateType.CANCELLED
            else flow.on_crashed
            if t is StateType.CRASHED
            else flow.on_running
            if t is StateType.RUNNING
            else []
        )
        for hook in hooks:
            try:
                hook(flow, self.flow_run, state)
            except Exception:
                logger.exception("Flow %r: hook %r raised; the run's state is unchanged.", flow.name, hook)

    def log(self, level: int, message: str, *args: Any) -> None:
        """Log as this flow run (to the console and the control plane)."""
        from orch.logging import RunLoggerAdapter, setup_logging

        setup_logging()
        extra = {
            "orch_flow_run_id": self.flow_run_id,
            "orch_task_run_id": None,
            "orch_run_label": f"Flow run {self.name!r}",
            "orch_recorder": self.recorder,
        }
        RunLoggerAdapter(logging.getLogger("orch.flow_runs"), extra).log(level, message, *args)

    def finish(self, final: State) -> None:
        heartbeats.unregister(self.flow_run_id)
        level = logging.INFO if final.type is StateType.COMPLETED else logging.ERROR
        self.log(level, "Finished in state %s", final)
        if self.parent_task is not None:
            details = {"child_flow_run_id": str(self.flow_run_id)}
            mirror = State(final.type, final.name, final.message, data=final.data, details=details)
            self.recorder.task_run(self.parent_task, [mirror])
        elif not self.recorder.flush(timeout=300):
            logger.warning(
                "orch: %d task-run records and log lines are not on the control plane yet; they will be retried.",
                getattr(self.recorder, "pending", 0),
            )

    def crash(self, exc: BaseException) -> State:
        from orch.states import Crashed

        state = Crashed(exc)
        try:
            self.propose(state)
        except Exception as error:
            logger.warning("Flow %r: could not record the crash: %s", self.flow.name, error)
        self.hooks(state)
        self.finish(state)
        return state


def _states_in(value: Any) -> list[State]:
    from orch.futures import OrchFuture

    if isinstance(value, OrchFuture):
        value.wait()
        return [value.state]
    if isinstance(value, State):
        return [value]
    if isinstance(value, list | tuple | set | frozenset):
        return [s for item in value for s in _states_in(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _states_in(item)]
    return []


def _thread_runner() -> Any:
    from orch.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner()


def _retry_delay(state: State) -> float:
    when = (state.details or {}).get("scheduled_time")
    if not when:
        return 0.0
    if isinstance(when, str):
        when = dt.datetime.fromisoformat(when)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _call_with_timeout(engine: FlowRunEngine, params: dict[str, Any]) -> Any:
    flow = engine.flow
    timeout = flow.timeout_seconds
    if timeout is None:
        return flow.binder.call(flow.fn, params)
    future: cf.Future[Any] = cf.Future()
    ctx = contextvars.copy_context()

    def body() -> None:
        try:
            future.set_result(flow.binder.call(flow.fn, params))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=ctx.run, args=(body,), daemon=True, name=f"orch-flow-{engine.name}").start()
    try:
        return future.result(timeout)
    except cf.TimeoutError:
        raise FlowTimeoutError(f"Flow run {engine.name!r} exceeded its timeout of {timeout} seconds.") from None


def _prepare(flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    params = flow.binder.bind(args, kwargs)
    return flow.validate(params) if flow.validate_parameters else params


def drive(engine: FlowRunEngine, state: State) -> State:
    """Take a created (``Running``) run to its final state: body, server-decided retries, hooks, final flush.

    Shared by calls of a flow (``run_flow``) and runs adopted from a deployment; raises ``FlowRunAborted`` and
    ``BaseException``s (after recording ``Crashed``). Callers freeze the heap around it (``gc_scope``)."""
    heartbeats.register(engine.client, engine.flow_run_id, engine.cancel_event)
    try:
        while state.type is StateType.RUNNING:
            engine.hooks(state)
            tokens = engine.enter()
            try:
                final = engine.outcome(_call_with_timeout(engine, engine.params))
            except Exception as exc:
                final = engine.failure(exc)
            finally:
                engine.exit(tokens)
            answer = engine.propose(final)
            if answer.type is StateType.SCHEDULED:
                # AwaitingRetry: the server decided to retry; run the body again at its scheduled time.
                time.sleep(_retry_delay(answer))
                state = engine.propose(State(StateType.RUNNING, "Retrying"))
                continue
            state = final if answer.type is final.type else answer
            break
    except FlowRunAborted:
        engine.finish(State(StateType.CANCELLED, message="Aborted by the control plane."))
        raise
    except BaseException as exc:
        engine.crash(exc)
        raise
    engine.hooks(state)
    engine.finish(state)
    return state


async def _await_body(engine: FlowRunEngine) -> Any:
    flow = engine.flow
    coro = flow.binder.call(flow.fn, engine.params)
    if flow.timeout_seconds is None:
        return await coro
    try:
        return await asyncio.wait_for(coro, flow.timeout_seconds)
    except TimeoutError:
        raise FlowTimeoutError(
            f"Flow run {engine.name!r} exceeded its timeout of {flow.timeout_seconds} seconds."
        ) from None


async def drive_async(engine: FlowRunEngine, state: State) -> State:
    """``drive`` for an async flow (the body is awaited; waits do not block the event loop)."""
    heartbeats.register(engine.client, engine.flow_run_id, engine.cancel_event)
    try:
        while state.type is StateType.RUNNING:
            engine.hooks(state)
            tokens = engine.enter()
            try:
                final = engine.outcome(await _await_body(engine))
            except Exception as exc:
                final = engine.failure(exc)
            finally:
                engine.exit(tokens)
            answer = await engine.propose_async(final)
            if answer.type is StateType.SCHEDULED:
                await asyncio.sleep(_retry_delay(answer))
                state = await engine.propose_async(State(StateType.RUNNING, "Retrying"))
                continue
            state = final if answer.type is final.type else answer
            break
    except FlowRunAborted:
        engine.finish(State(StateType.CANCELLED, message="Aborted by the control plane."))
        raise
    except BaseException as exc:
        engine.crash(exc)
        raise
    engine.hooks(state)
    engine.finish(state)
    return state


def run_flow(flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool) -> Any:
    """Run a sync flow to its final state; return its result (or the state)."""
    engine = FlowRunEngine(flow, _prepare(flow, args, kwargs))
    # From the run's creation to its final flush (the client, and so an embedded app, exists by now): full
    # collections that fall in this window skip the heap that was there before (``gc_scope``).
    with flow_heap_frozen():
        final = drive(engine, engine.create())
    return final if return_state else final.result()


async def run_flow_async(
    flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool
) -> Any:
    """Run an async flow to its final state; return its result (or the state)."""
    engine = FlowRunEngine(flow, _prepare(flow, args, kwargs))
    with flow_heap_frozen():
        final = await drive_async(engine, engine.create())
    return final if return_state else final.result()
