"""Flows: the ``@flow`` decorator and the :class:`Flow` it returns (the definition; ``_engine/flow_engine.py`` runs it).

Calling a flow creates a flow run on the control plane and runs the function in it; it returns the function's
result (``return_state=True``: its final state). A flow called inside another flow is a *subflow*: the parent
records a task run standing for the call, and the child's ``parent_task_run_id`` points at it. Flow-run retries are
decided by the server (``retries`` and ``retry_delay_seconds`` become the run's ``empirical_policy``).

With ``validate_parameters`` (the default) the call's arguments are checked and coerced against the type hints,
like pydantic's ``validate_call``; a bad one raises :class:`~orch.exceptions.ParameterValidationError` naming the
parameter and the reason. An async flow called where no event loop is running is run with ``asyncio.run``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from orch._callables import Binder
from orch.tasks import _check_hooks, _loop_running, _run_coroutine, check_common_options

if TYPE_CHECKING:
    from orch.task_runners import TaskRunner

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["Flow", "flow"]

Hook = Callable[..., Any]


class Flow(Generic[P, R]):
    """A function made into a flow. Build with ``@flow``; change options with :meth:`with_options`."""

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        tags: Iterable[str] | None = None,
        flow_run_name: str | Callable[[], str] | None = None,
        retries: int = 0,
        retry_delay_seconds: float = 0,
        task_runner: TaskRunner | None = None,
        timeout_seconds: float | None = None,
        validate_parameters: bool = True,
        log_prints: bool = False,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: str | None = None,
        on_completion: Iterable[Hook] | None = None,
        on_failure: Iterable[Hook] | None = None,
        on_cancellation: Iterable[Hook] | None = None,
        on_crashed: Iterable[Hook] | None = None,
        on_running: Iterable[Hook] | None = None,
    ) -> None:
        check_common_options(
            "flow", fn, retries, retry_delay_seconds, timeout_seconds, result_serializer, result_storage
        )
        if callable(retry_delay_seconds) or isinstance(retry_delay_seconds, list | tuple):
            raise TypeError("A flow's retry_delay_seconds is one number of seconds (the server schedules retries).")
        if task_runner is not None and not hasattr(task_runner, "submit"):
            raise TypeError(f"task_runner must be a task runner such as ThreadPoolTaskRunner(), not {task_runner!r}.")
        if isinstance(task_runner, type):
            raise TypeError("task_runner takes an instance: task_runner=ThreadPoolTaskRunner(), not the class.")
        if flow_run_name is not None and not isinstance(flow_run_name, str) and not callable(flow_run_name):
            raise TypeError("flow_run_name must be a string template or a callable returning a string.")
        self.fn = fn
        functools.update_wrapper(self, fn)
        self.name = fn.__name__.replace("_", "-") if name is None else name
        if not self.name or len(self.name) > 200 or any(ord(c) < 32 for c in self.name):
            raise ValueError(f"A flow name must be 1-200 printable characters, not {self.name!r}.")
        self.description = description or inspect.getdoc(fn)
        self.version = version
        self.tags = frozenset(tags or ())
        self.flow_run_name = flow_run_name
        self.retries = retries
        self.retry_delay_seconds = float(retry_delay_seconds or 0)
        self.task_runner = task_runner
        self.timeout_seconds = timeout_seconds
        self.validate_parameters = validate_parameters
        self.log_prints = log_prints
        self.persist_result = persist_result
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.on_completion = _check_hooks("on_completion", on_completion)
        self.on_failure = _check_hooks("on_failure", on_failure)
        self.on_cancellation = _check_hooks("on_cancellation", on_cancellation)
        self.on_crashed = _check_hooks("on_crashed", on_crashed)
        self.on_running = _check_hooks("on_running", on_running)
        self.is_async = inspect.iscoroutinefunction(fn)
        self.binder = Binder(fn)
        self._validator: Any = None

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Check and coerce ``params`` against the type hints (see ``_engine/parameters.py``)."""
        from orch._engine.parameters import validate_parameters

        if self._validator is None:
            from orch._engine.parameters import build_validator

            self._validator = build_validator(self.fn, self.name)
        return validate_parameters(self._validator, params, self.name)

    def deploy(self, name: str, **options: Any) -> Any:
        """Bundle this flow's project, store it and register the deployment ``FLOW/name`` (as Prefect's
        ``flow.deploy``); options as in ``orch.yaml`` (``work_queue``, ``cron``, ``parameters``, ``infra``...)."""
        from orch.deployments import deploy

        return deploy(self, name, **options)

    def to_deployment(self, name: str, **options: Any) -> Any:
        """The deployment definition for this flow, without registering it (Prefect's ``flow.to_deployment``)."""
        from orch.deployments import to_deployment

        return to_deployment(self, name, **options)

    def with_options(self, **options: Any) -> Flow[P, R]:
        """A copy of this flow with some options changed (same names as ``@flow``)."""
        current = {
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "tags": self.tags,
            "flow_run_name": self.flow_run_name,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "task_runner": self.task_runner,
            "timeout_seconds": self.timeout_seconds,
            "validate_parameters": self.validate_parameters,
            "log_prints": self.log_prints,
            "persist_result": self.persist_result,
            "result_storage": self.result_storage,
            "result_serializer": self.result_serializer,
            "on_completion": self.on_completion,
            "on_failure": self.on_failure,
            "on_cancellation": self.on_cancellation,
            "on_crashed": self.on_crashed,
            "on_running": self.on_running,
        }
        unknown = set(options) - set(current)
        if unknown:
            raise TypeError(f"with_options() got unknown options: {', '.join(sorted(unknown))}.")
        current.update(options)
        return Flow(self.fn, **current)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the flow: create a flow run, execute the function in it, return its result (or final state)."""
        return_state = bool(kwargs.pop("return_state", False))
        from orch._engine import flow_engine

        if self.is_async:
            coro = flow_engine.run_flow_async(self, args, kwargs, return_state)
            return coro if _loop_running() else _run_coroutine(coro)  # type: ignore[return-value]
        return flow_engine.run_flow(self, args, kwargs, return_state)

    def __repr__(self) -> str:
        return f"Flow(name={self.name!r})"


@overload
def flow(__fn: Callable[P, R]) -> Flow[P, R]: ...


@overload
def flow(
    __fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    version: str | None = None,
    tags: Iterable[str] | None = None,
    flow_run_name: str | Callable[[], str] | None = None,
    retries: int = 0,
    retry_delay_seconds: float = 0,
    task_runner: TaskRunner | None = None,
    timeout_seconds: float | None = None,
    validate_parameters: bool = True,
    log_prints: bool = False,
    persist_result: bool | None = None,
    result_storage: Any = None,
    result_serializer: str | None = None,
    on_completion: Iterable[Hook] | None = None,
    on_failure: Iterable[Hook] | None = None,
    on_cancellation: Iterable[Hook] | None = None,
    on_crashed: Iterable[Hook] | None = None,
    on_running: Iterable[Hook] | None = None,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(__fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Make a function a flow: ``@flow`` or ``@flow(name=..., retries=..., task_runner=...)``."""
    if __fn is not None:
        return Flow(__fn, **options)
    return lambda fn: Flow(fn, **options)
