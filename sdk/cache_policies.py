"""Cache policies: how a task run's cache key is computed from what the run depends on.

A policy looks at the task run (``TaskRunContext``), its inputs and its flow's parameters and returns a key, or
``None`` for "do not cache". Policies combine with ``+`` (the key then depends on each part); ``INPUTS - "name"``
leaves a parameter out. As in Prefect::

    INPUTS            the task's arguments
    TASK_SOURCE       the task function's source code
    FLOW_PARAMETERS   the parameters of the flow run the task belongs to
    RUN_ID            the flow run's id (caching within one flow run only)
    NO_CACHE          never cache
    DEFAULT           INPUTS + TASK_SOURCE + RUN_ID

A key only helps when the result is persisted: a task given a cache policy or ``cache_key_fn`` explicitly persists
its result (the cache key becomes the storage key), so a later run, in any process, finds it there.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orch.context import TaskRunContext

__all__ = [
    "DEFAULT",
    "FLOW_PARAMETERS",
    "INPUTS",
    "NO_CACHE",
    "RUN_ID",
    "TASK_SOURCE",
    "CacheKeyFnPolicy",
    "CachePolicy",
    "CompoundCachePolicy",
    "FlowParameters",
    "Inputs",
    "RunId",
    "TaskSource",
    "hash_objects",
]


def hash_objects(*objects: Any) -> str:
    """A stable hash of ``objects``: JSON when they are plain data, cloudpickle otherwise."""
    try:
        data = json.dumps(objects, sort_keys=True, separators=(",", ":")).encode()
    except (TypeError, ValueError):
        import cloudpickle

        data = cloudpickle.dumps(objects)
    return hashlib.sha256(data).hexdigest()


class CachePolicy:
    """Base class: subclasses implement :meth:`compute_key`."""

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        raise NotImplementedError

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        parts = [*_parts(self), *_parts(other)]
        if not parts:
            return NO_CACHE
        return parts[0] if len(parts) == 1 else CompoundCachePolicy(parts)

    def __repr__(self) -> str:
        return type(self).__name__ + "()"


def _parts(policy: CachePolicy) -> list[CachePolicy]:
    if isinstance(policy, CompoundCachePolicy):
        return list(policy.policies)
    if isinstance(policy, _NoCache):
        return []
    return [policy]


class CompoundCachePolicy(CachePolicy):
    """The key depends on every part; ``None`` when no part gives a key."""

    def __init__(self, policies: Iterable[CachePolicy]) -> None:
        self.policies = tuple(policies)

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        keys = [p.compute_key(task_ctx, inputs, flow_parameters) for p in self.policies]
        present = [k for k in keys if k is not None]
        return hash_objects(present) if present else None

    def __sub__(self, name: str) -> CachePolicy:
        return CompoundCachePolicy(p - name if isinstance(p, Inputs) else p for p in self.policies)

    def __repr__(self) -> str:
        return " + ".join(repr(p) for p in self.policies) or "NO_CACHE"


class Inputs(CachePolicy):
    """The task's arguments, except the ones named in ``exclude``."""

    def __init__(self, exclude: Iterable[str] = ()) -> None:
        self.exclude = frozenset(exclude)

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        return hash_objects({k: v for k, v in inputs.items() if k not in self.exclude})

    def __sub__(self, name: str) -> Inputs:
        return Inputs(self.exclude | {name})


class TaskSource(CachePolicy):
    """The task function's source code (its bytecode when the source cannot be read)."""

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        return task_ctx.task.source_hash


class FlowParameters(CachePolicy):
    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        return hash_objects(flow_parameters)


class RunId(CachePolicy):
    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        flow_run = task_ctx.flow_run
        return str(flow_run.flow_run_id) if flow_run is not None else None


class _NoCache(CachePolicy):
    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        return None

    def __add__(self, other: CachePolicy) -> CachePolicy:
        return other

    def __radd__(self, other: CachePolicy) -> CachePolicy:
        return other

    def __repr__(self) -> str:
        return "NO_CACHE"


class CacheKeyFnPolicy(CachePolicy):
    """Wraps a user's ``cache_key_fn(task_run_context, parameters) -> str | None``."""

    def __init__(self, fn: Callable[[TaskRunContext, dict[str, Any]], str | None]) -> None:
        self.fn = fn

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        return self.fn(task_ctx, inputs)


def source_hash(fn: Callable[..., Any]) -> str:
    """The hash :data:`TASK_SOURCE` uses (computed once per task)."""
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        return hashlib.sha256(code.co_code if code is not None else repr(fn).encode()).hexdigest()
    return hashlib.sha256(text.encode()).hexdigest()


INPUTS = Inputs()
TASK_SOURCE = TaskSource()
FLOW_PARAMETERS = FlowParameters()
RUN_ID = RunId()
NO_CACHE = _NoCache()
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID
