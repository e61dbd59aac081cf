"""Cache policies compute keys from what a task run depends on."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from orch import task
from orch.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NO_CACHE,
    RUN_ID,
    TASK_SOURCE,
    CompoundCachePolicy,
    hash_objects,
)
from orch.context import FlowRunContext, TaskRunContext
from orch.results import ResultOptions

pytestmark = pytest.mark.unit


@task
def double(x: int) -> int:
    return 2 * x


@task
def triple(x: int) -> int:
    return 3 * x


def _ctx(t: Any, flow_run_id: uuid.UUID | None = None) -> TaskRunContext:
    flow_ctx = FlowRunContext(flow_run_id or uuid.uuid4(), "r", "f", {}, recorder=None, result_options=ResultOptions())  # type: ignore[arg-type]
    return TaskRunContext(t, uuid.uuid4(), "t-0", {}, flow_ctx)


def test_inputs_depends_on_arguments_only() -> None:
    a, b = _ctx(double), _ctx(triple)
    assert INPUTS.compute_key(a, {"x": 1}, {}) == INPUTS.compute_key(b, {"x": 1}, {})
    assert INPUTS.compute_key(a, {"x": 1}, {}) != INPUTS.compute_key(a, {"x": 2}, {})
    without = INPUTS - "noise"
    assert without.compute_key(a, {"x": 1, "noise": 1}, {}) == without.compute_key(a, {"x": 1, "noise": 2}, {})
    # Objects JSON cannot encode are hashed through cloudpickle.
    assert INPUTS.compute_key(a, {"x": {1, 2}}, {}) == INPUTS.compute_key(a, {"x": {2, 1}}, {})


def test_task_source_flow_parameters_and_run_id() -> None:
    run = uuid.uuid4()
    assert TASK_SOURCE.compute_key(_ctx(double), {}, {}) != TASK_SOURCE.compute_key(_ctx(triple), {}, {})
    assert FLOW_PARAMETERS.compute_key(_ctx(double), {}, {"p": 1}) != FLOW_PARAMETERS.compute_key(
        _ctx(double), {}, {"p": 2}
    )
    assert RUN_ID.compute_key(_ctx(double, run), {}, {}) == str(run)
    assert NO_CACHE.compute_key(_ctx(double), {}, {}) is None


def test_combining_with_plus() -> None:
    combined = INPUTS + TASK_SOURCE
    assert isinstance(combined, CompoundCachePolicy)
    assert len(combined.policies) == 2
    ctx = _ctx(double)
    assert combined.compute_key(ctx, {"x": 1}, {}) != combined.compute_key(_ctx(triple), {"x": 1}, {})
    assert (INPUTS + NO_CACHE).compute_key(ctx, {"x": 1}, {}) == INPUTS.compute_key(ctx, {"x": 1}, {})
    assert len(DEFAULT.policies) == 3  # type: ignore[attr-defined]
    assert (DEFAULT - "x").compute_key(ctx, {"x": 1}, {}) == (DEFAULT - "x").compute_key(ctx, {"x": 2}, {})  # type: ignore[operator]


def test_hash_is_stable() -> None:
    assert hash_objects({"a": 1, "b": [1, 2]}) == hash_objects({"b": [1, 2], "a": 1})
