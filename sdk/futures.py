"""Futures: a handle on a task run submitted to a task runner.

``task.submit(...)`` returns an :class:`OrchFuture` at once; ``.wait()`` blocks until the run is final, ``.state``
is its state so far, ``.result()`` its value (raising the task's exception when it failed). ``wait(futures)`` and
``as_completed(futures)`` work on many. Futures, states, and lists/tuples/sets/dicts of them passed as task
arguments are resolved to their values before the downstream task runs (``resolve_inputs``); an upstream that did
not complete stops the downstream task with :class:`UpstreamTaskError` unless wrapped in ``allow_failure``.
"""

from __future__ import annotations

import concurrent.futures as cf
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar

from orch._annotations import allow_failure, unmapped
from orch.exceptions import UpstreamTaskError
from orch.states import State, StateType

R = TypeVar("R")

__all__ = ["DoneAndNotDoneFutures", "OrchFuture", "UpstreamTaskError", "as_completed", "wait"]


class OrchFuture(Generic[R]):
    """The future of one task run; its underlying ``concurrent.futures.Future`` resolves to the final ``State``."""

    __slots__ = ("_future", "task_run_id")

    def __init__(self, task_run_id: uuid.UUID, future: cf.Future[State]) -> None:
        self.task_run_id = task_run_id
        self._future = future

    @classmethod
    def from_state(cls, task_run_id: uuid.UUID, state: State) -> OrchFuture[R]:
        future: cf.Future[State] = cf.Future()
        future.set_result(state)
        return cls(task_run_id, future)

    @property
    def state(self) -> State:
        """The final state once done; ``Pending`` before."""
        if self._future.done():
            return self._final_state()
        return State(StateType.PENDING)

    def done(self) -> bool:
        return self._future.done()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the run is final (or ``timeout`` seconds passed)."""
        cf.wait([self._future], timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """The task's return value; raises its exception when it failed (``raise_on_failure=False`` returns it)."""
        try:
            state = self._future.result(timeout=timeout)
        except cf.TimeoutError:
            raise TimeoutError(f"Task run {self.task_run_id} did not finish within {timeout} seconds.") from None
        return state.result(raise_on_failure=raise_on_failure)

    def add_done_callback(self, fn: Callable[[OrchFuture[R]], None]) -> None:
        self._future.add_done_callback(lambda _: fn(self))

    def _final_state(self) -> State:
        exc = self._future.exception()
        if exc is not None:
            # The runner itself failed (e.g. a worker process died): the task run crashed.
            from orch.states import Crashed

            return Crashed(exc)
        return self._future.result()

    def __repr__(self) -> str:
        return f"OrchFuture(task_run_id={self.task_run_id}, done={self._future.done()})"


class DoneAndNotDoneFutures(NamedTuple):
    done: set[OrchFuture[Any]]
    not_done: set[OrchFuture[Any]]


def wait(futures: Iterable[OrchFuture[Any]], timeout: float | None = None) -> DoneAndNotDoneFutures:
    """Wait for all ``futures`` (or until ``timeout``); returns the done and not-done sets."""
    by_inner = {f._future: f for f in futures}
    done, not_done = cf.wait(by_inner, timeout=timeout)
    return DoneAndNotDoneFutures({by_inner[f] for f in done}, {by_inner[f] for f in not_done})


def as_completed(futures: Iterable[OrchFuture[Any]], timeout: float | None = None) -> Iterator[OrchFuture[Any]]:
    """Yield ``futures`` as they finish; ``TimeoutError`` if some are still running after ``timeout`` seconds."""
    by_inner = {f._future: f for f in futures}
    for inner in cf.as_completed(by_inner, timeout=timeout):
        yield by_inner[inner]


# -- resolving arguments ---------------------------------------------------------------------------------------

_PLAIN = (int, float, str, bool, bytes, type(None))


def _final(value: OrchFuture[Any] | State) -> State:
    if isinstance(value, OrchFuture):
        value._future.result()  # wait; runner errors become a Crashed state below
        return value._final_state()
    return value


def _resolve(value: Any, allow: bool, upstream: list[uuid.UUID]) -> Any:
    cls = type(value)
    if cls in _PLAIN:
        return value
    if cls is OrchFuture or cls is State or isinstance(value, OrchFuture | State):
        if isinstance(value, OrchFuture):
            upstream.append(value.task_run_id)
        state = _final(value)
        if state.type is StateType.COMPLETED:
            return state.result()
        if allow:
            return state.result(raise_on_failure=False)
        raise UpstreamTaskError(f"An upstream run ended in state {state.name!r}: {state.message or ''}".rstrip(": "))
    if cls is allow_failure:
        return _resolve(value.value, True, upstream)
    if cls is unmapped:
        return _resolve(value.value, allow, upstream)
    if cls is list:
        return [_resolve(v, allow, upstream) for v in value]
    if cls is tuple:
        return tuple(_resolve(v, allow, upstream) for v in value)
    if cls is set or cls is frozenset:
        return cls(_resolve(v, allow, upstream) for v in value)
    if cls is dict:
        return {_resolve(k, allow, upstream): _resolve(v, allow, upstream) for k, v in value.items()}
    return value


def resolve_inputs(parameters: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """Parameters with futures and states replaced by their results, and the ``task_inputs`` record of upstreams."""
    resolved: dict[str, Any] = {}
    task_inputs: dict[str, list[dict[str, str]]] = {}
    for name, value in parameters.items():
        if type(value) in _PLAIN:
            resolved[name] = value
            continue
        upstream: list[uuid.UUID] = []
        resolved[name] = _resolve(value, False, upstream)
        if upstream:
            task_inputs[name] = [{"input_type": "task_run", "id": str(i)} for i in upstream]
    return resolved, task_inputs


def wait_for_upstreams(wait_for: Iterable[Any]) -> list[dict[str, str]]:
    """Block until every future/state in ``wait_for`` is final; raise if one did not complete (unless allowed)."""
    upstream: list[uuid.UUID] = []
    for item in wait_for:
        _resolve(item, False, upstream)
    return [{"input_type": "task_run", "id": str(i)} for i in upstream]
