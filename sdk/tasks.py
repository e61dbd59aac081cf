"""Tasks: the ``@task`` decorator and the :class:`Task` it returns (the definition; ``_engine/task_engine.py`` runs it).

Calling a task inside a flow runs it and returns its result (``return_state=True``: its final state);
``.submit()`` hands it to the flow's task runner and returns a future; ``.map()`` submits one run per element of
its iterable arguments (``unmapped(x)`` passes ``x`` whole). Outside a flow a task still runs, like in Prefect 3,
and its run is recorded without a flow run (``flow_run_id`` null) by the process's recorder.

An async task called where no event loop is running is run to completion (``asyncio.run``); called where a loop is
running, it returns an awaitable.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from orch._annotations import unmapped
from orch._callables import Binder
from orch.cache_policies import DEFAULT, NO_CACHE, CacheKeyFnPolicy, CachePolicy
from orch.context import flow_run_var
from orch.serializers import get_serializer
from orch.states import StateType

_COMPLETED = StateType.COMPLETED

if TYPE_CHECKING:
    from orch.futures import OrchFuture
    from orch.states import State

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["Task", "exponential_backoff", "task"]

RetryDelay = float | int | list[float] | list[int] | Callable[[int], list[float]] | None
Hook = Callable[..., Any]
_UNSET: Any = object()


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """``retry_delay_seconds=exponential_backoff(10)`` waits 10, 20, 40, ... seconds before successive retries."""
    if backoff_factor < 0:
        raise ValueError(f"backoff_factor must not be negative, not {backoff_factor}.")

    def delays(retries: int) -> list[float]:
        return [backoff_factor * 2**attempt for attempt in range(retries)]

    return delays


def _check_hooks(name: str, hooks: Iterable[Hook] | None) -> list[Hook]:
    hooks = list(hooks or [])
    for hook in hooks:
        if not callable(hook):
            raise TypeError(f"{name} must be a list of callables; {hook!r} is not callable.")
    return hooks


def check_common_options(
    kind: str,
    fn: Any,
    retries: int,
    retry_delay_seconds: Any,
    timeout_seconds: float | None,
    result_serializer: str | None,
    result_storage: Any,
) -> None:
    """The checks ``@task`` and ``@flow`` share: misuse fails at decoration time with one clear message."""
    from orch.results import validate_storage_spec

    if inspect.isclass(fn):
        raise TypeError(f"@{kind} decorates functions, not classes: {fn.__name__} is a class.")
    if not callable(fn):
        raise TypeError(f"@{kind} decorates functions; {fn!r} is not callable.")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a whole number of at least 0, not {retries!r}.")
    delays = retry_delay_seconds
    if delays is not None and not callable(delays):
        items = delays if isinstance(delays, list | tuple) else [delays]
        for d in items:
            if isinstance(d, bool) or not isinstance(d, int | float) or d < 0:
                raise ValueError(
                    f"retry_delay_seconds must be seconds (>= 0), a list of them or a callable; got {d!r}."
                )
    if timeout_seconds is not None and (
        isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int | float) or timeout_seconds <= 0
    ):
        raise ValueError(f"timeout_seconds must be a positive number of seconds, not {timeout_seconds!r}.")
    if result_serializer is not None:
        get_serializer(result_serializer)
    validate_storage_spec(result_storage)


class Task(Generic[P, R]):
    """A function made into a task. Build with ``@task``; change options with :meth:`with_options`."""

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        retries: int = 0,
        retry_delay_seconds: RetryDelay = None,
        retry_jitter_factor: float | None = None,
        retry_condition_fn: Callable[[Task[..., Any], Any, State], bool] | None = None,
        timeout_seconds: float | None = None,
        log_prints: bool | None = None,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: str | None = None,
        cache_policy: CachePolicy | None = _UNSET,
        cache_key_fn: Callable[[Any, dict[str, Any]], str | None] | None = None,
        cache_expiration: dt.timedelta | None = None,
        refresh_cache: bool = False,
        on_completion: Iterable[Hook] | None = None,
        on_failure: Iterable[Hook] | None = None,
        on_running: Iterable[Hook] | None = None,
    ) -> None:
        check_common_options(
            "task", fn, retries, retry_delay_seconds, timeout_seconds, result_serializer, result_storage
        )
        if retry_jitter_factor is not None and retry_jitter_factor < 0:
            raise ValueError(f"retry_jitter_factor must not be negative, not {retry_jitter_factor!r}.")
        if retry_condition_fn is not None and not callable(retry_condition_fn):
            raise TypeError("retry_condition_fn must be a callable (task, task_run, state) -> bool.")
        if cache_policy is not _UNSET and cache_policy is not None and not isinstance(cache_policy, CachePolicy):
            raise TypeError(f"cache_policy must be a cache policy such as INPUTS or TASK_SOURCE, not {cache_policy!r}.")
        if cache_key_fn is not None and not callable(cache_key_fn):
            raise TypeError("cache_key_fn must be a callable (context, parameters) -> str.")
        if cache_expiration is not None and not isinstance(cache_expiration, dt.timedelta):
            raise TypeError(f"cache_expiration must be a datetime.timedelta, not {cache_expiration!r}.")
        self.fn = fn
        functools.update_wrapper(self, fn)
        self.name = fn.__name__ if name is None else name
        if not isinstance(self.name, str) or not self.name or len(self.name) > 200:
            raise ValueError(f"A task name must be 1-200 characters, not {self.name!r}.")
        self.description = description or inspect.getdoc(fn)
        self.tags = frozenset(tags or ())
        self.tags_list = sorted(self.tags)
        self.version = version
        self.retries = retries
        self.retry_delay_seconds = retry_delay_seconds
        self.retry_jitter_factor = retry_jitter_factor
        self.retry_condition_fn = retry_condition_fn
        self.timeout_seconds = timeout_seconds
        self.log_prints = log_prints
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.cache_key_fn = cache_key_fn
        self.cache_expiration = cache_expiration
        self.refresh_cache = refresh_cache
        self.on_completion = _check_hooks("on_completion", on_completion)
        self.on_failure = _check_hooks("on_failure", on_failure)
        self.on_running = _check_hooks("on_running", on_running)
        self.is_async = inspect.iscoroutinefunction(fn)
        self.binder = Binder(fn)
        self.task_key = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', self.name)}"[:500]
        # Caching applies when asked for explicitly (a policy, a key function) or when results are persisted;
        # the implicit DEFAULT policy alone does not make every task hash its inputs (as in Prefect).
        explicit = cache_policy is not _UNSET or cache_key_fn is not None
        self.cache_policy: CachePolicy | None = DEFAULT if cache_policy is _UNSET else cache_policy
        self._cache_policy_arg = cache_policy
        policy: CachePolicy = CacheKeyFnPolicy(cache_key_fn) if cache_key_fn else (self.cache_policy or NO_CACHE)
        self.effective_cache_policy = policy
        caching_asked = explicit and policy is not NO_CACHE
        self.persist_result = True if persist_result is None and caching_asked else persist_result
        self.caching = policy is not NO_CACHE and (caching_asked or bool(self.persist_result))
        self._source_hash: str | None = None

    @property
    def source_hash(self) -> str:
        if self._source_hash is None:
            from orch.cache_policies import source_hash

            self._source_hash = source_hash(self.fn)
        return self._source_hash

    def retry_delay_for(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        from orch._engine.task_engine import jitter

        delays = self.retry_delay_seconds
        if delays is None:
            delay = 0.0
        elif callable(delays):
            listed = delays(self.retries)
            delay = float(listed[min(attempt, len(listed)) - 1]) if listed else 0.0
        elif isinstance(delays, list | tuple):
            delay = float(delays[min(attempt, len(delays)) - 1]) if delays else 0.0
        else:
            delay = float(delays)
        return jitter(delay, self.retry_jitter_factor)

    def with_options(self, **options: Any) -> Task[P, R]:
        """A copy of this task with some options changed (same names as ``@task``)."""
        current = {
            "name": self.name,
            "description": self.description,
            "tags": self.tags,
            "version": self.version,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "retry_jitter_factor": self.retry_jitter_factor,
            "retry_condition_fn": self.retry_condition_fn,
            "timeout_seconds": self.timeout_seconds,
            "log_prints": self.log_prints,
            "persist_result": self.persist_result,
            "result_storage": self.result_storage,
            "result_serializer": self.result_serializer,
            "cache_policy": self._cache_policy_arg,
            "cache_key_fn": self.cache_key_fn,
            "cache_expiration": self.cache_expiration,
            "refresh_cache": self.refresh_cache,
            "on_completion": self.on_completion,
            "on_failure": self.on_failure,
            "on_running": self.on_running,
        }
        unknown = set(options) - set(current)
        if unknown:
            raise TypeError(f"with_options() got unknown options: {', '.join(sorted(unknown))}.")
        current.update(options)
        return Task(self.fn, **current)

    # -- calling -----------------------------------------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the task now; ``return_state=True`` returns its final state, ``wait_for=[...]`` waits first."""
        return self._call(args, kwargs)

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return_state = kwargs.pop("return_state", False) if "return_state" in kwargs else False
        wait_for = kwargs.pop("wait_for", None) if "wait_for" in kwargs else None
        params = self.binder.bind(args, kwargs)
        flow_ctx = flow_run_var.get()
        if self.is_async:
            coro = self._call_async(params, flow_ctx, wait_for, return_state)
            if _loop_running():
                return coro
            return _run_coroutine(coro)
        state = _engine().run_task(self, params, flow_ctx, wait_for)
        if return_state:
            return state
        if state.type is _COMPLETED:
            return state._result
        return state.result()

    async def _call_async(self, params: dict[str, Any], flow_ctx: Any, wait_for: Any, return_state: bool) -> Any:
        from orch._engine.task_engine import run_task_async

        state = await run_task_async(self, params, flow_ctx, wait_for)
        return state if return_state else state.result()

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> OrchFuture[R]:
        """Run the task on the flow's task runner (a default thread pool outside a flow); returns a future."""
        wait_for = kwargs.pop("wait_for", None)
        params = self.binder.bind(args, kwargs)
        flow_ctx = flow_run_var.get()
        runner = (
            flow_ctx.task_runner if flow_ctx is not None and flow_ctx.task_runner is not None else _default_runner()
        )
        return runner.submit(self, params, flow_ctx, wait_for)

    def map(self, *args: Any, **kwargs: Any) -> list[OrchFuture[R]]:
        """Submit one run per element of the iterable arguments (all of the same length); ``unmapped`` is whole."""
        wait_for = kwargs.pop("wait_for", None)
        params = self.binder.bind(args, kwargs)
        iterables: dict[str, list[Any]] = {}
        for name, value in params.items():
            if isinstance(value, unmapped | str | bytes | dict):
                continue
            if isinstance(value, Iterable):
                iterables[name] = list(value)
        if not iterables:
            raise ValueError(f"Task {self.name!r}.map() needs at least one iterable argument that is not unmapped.")
        lengths = {len(v) for v in iterables.values()}
        if len(lengths) > 1:
            sizes = ", ".join(f"{k}={len(v)}" for k, v in iterables.items())
            raise ValueError(f"Task {self.name!r}.map() got iterables of different lengths: {sizes}.")
        futures = []
        for i in range(lengths.pop()):
            call = {k: (iterables[k][i] if k in iterables else _unwrap(v)) for k, v in params.items()}
            submit: Any = self.submit
            futures.append(submit(**call, wait_for=wait_for))
        return futures

    def __repr__(self) -> str:
        return f"Task(name={self.name!r})"


_task_engine: Any = None


def _engine() -> Any:
    """The task engine module, imported on the first task call (keeps ``import orch`` light)."""
    global _task_engine
    if _task_engine is None:
        from orch._engine import task_engine

        _task_engine = task_engine
    return _task_engine


def _unwrap(value: Any) -> Any:
    return value.value if isinstance(value, unmapped) else value


def _loop_running() -> bool:
    """True when called from a running event loop (asyncio not imported yet means no loop can be running)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_coroutine(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


_runner: Any = None


def _default_runner() -> Any:
    global _runner
    if _runner is None:
        from orch.task_runners import ThreadPoolTaskRunner

        _runner = ThreadPoolTaskRunner()
    return _runner


@overload
def task(__fn: Callable[P, R]) -> Task[P, R]: ...


@overload
def task(
    __fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    version: str | None = None,
    retries: int = 0,
    retry_delay_seconds: RetryDelay = None,
    retry_jitter_factor: float | None = None,
    retry_condition_fn: Callable[[Task[..., Any], Any, State], bool] | None = None,
    timeout_seconds: float | None = None,
    log_prints: bool | None = None,
    persist_result: bool | None = None,
    result_storage: Any = None,
    result_serializer: str | None = None,
    cache_policy: CachePolicy | None = ...,
    cache_key_fn: Callable[[Any, dict[str, Any]], str | None] | None = None,
    cache_expiration: dt.timedelta | None = None,
    refresh_cache: bool = False,
    on_completion: Iterable[Hook] | None = None,
    on_failure: Iterable[Hook] | None = None,
    on_running: Iterable[Hook] | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(__fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Make a function a task: ``@task`` or ``@task(name=..., retries=..., cache_policy=...)``."""
    if __fn is not None:
        return Task(__fn, **options)
    return lambda fn: Task(fn, **options)
