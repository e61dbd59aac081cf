"""While flows run, the heap that existed before the outermost one started is frozen (``orch._engine.gc_scope``):
left out of full collections, put back when the last flow ends; garbage made during the flow is collected as before.
Real flows in the embedded mode (the autouse harness of tests/sdk/conftest.py)."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from typing import Any

import pytest

from orch import flow, task
from orch._engine import gc_scope
from orch.settings import clear_settings_cache

pytestmark = pytest.mark.integration


class Node:
    """A weak-referenceable object to build reference cycles with."""

    def __init__(self) -> None:
        self.other: Any = None


def _cycle() -> weakref.ref[Node]:
    """An unreachable two-node cycle (only the cycle collector frees it); a weak reference to one node."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture(autouse=True)
def _nothing_frozen() -> None:
    gc.collect()
    # Something else in this process froze the heap (a test that built a server's app in-process, say) and did not
    # put it back: these tests could not tell the flows' freeze from it.
    assert gc.get_freeze_count() == 0, "the heap is frozen before the test: an earlier test left it so"


def test_frozen_while_the_flow_runs_and_put_back_after() -> None:
    seen: dict[str, int] = {}

    @task
    def inside_task() -> int:
        return gc.get_freeze_count()

    @flow
    def f() -> None:
        seen["flow"] = gc.get_freeze_count()
        seen["task"] = inside_task()

    f()
    assert seen["flow"] > 10_000  # the SDK, pydantic, the embedded app...
    # still frozen inside the task (the count itself may have dropped: frozen objects freed meanwhile leave it)
    assert seen["task"] > 10_000
    assert gc.get_freeze_count() == 0


def test_garbage_made_during_the_flow_is_collected_during_it() -> None:
    @flow
    def f() -> bool:
        ref = _cycle()
        gc.collect()
        return ref() is None

    assert f() is True


def test_an_old_object_turned_garbage_during_the_flow_is_collected_after_it() -> None:
    holder = {"node": Node()}
    holder["node"].other = holder["node"]  # a cycle of one, alive through ``holder``
    ref = weakref.ref(holder["node"])

    @flow
    def f() -> bool:
        holder.clear()  # now unreachable garbage, but frozen
        gc.collect()
        return ref() is not None

    assert f() is True  # not collected while the flow ran
    gc.collect()
    assert ref() is None  # collected once the heap is put back


def test_subflows_share_the_outer_flows_freeze() -> None:
    seen: dict[str, Any] = {}

    @flow
    def child(marker: list[int]) -> None:
        seen["child count"] = gc.get_freeze_count()
        # made in the parent after its freeze: a subflow does not freeze again (only the outermost flow does)
        seen["marker tracked in a generation"] = any(o is marker for o in gc.get_objects())

    @flow
    def parent() -> None:
        seen["parent count"] = gc.get_freeze_count()
        marker = [1, 2, 3]
        child(marker)
        seen["parent count after the child"] = gc.get_freeze_count()

    parent()
    assert seen["parent count"] > 0
    assert seen["child count"] > 0
    assert seen["marker tracked in a generation"] is True
    assert seen["parent count after the child"] > 0  # the subflow's end did not unfreeze
    assert gc.get_freeze_count() == 0


def test_flows_in_two_threads_unfreeze_when_the_last_ends() -> None:
    first_started, second_done = threading.Event(), threading.Event()
    counts: dict[str, int] = {}

    @flow
    def long() -> None:
        first_started.set()
        assert second_done.wait(30)
        counts["long, after the short one ended"] = gc.get_freeze_count()

    @flow
    def short() -> None:
        counts["short"] = gc.get_freeze_count()

    thread = threading.Thread(target=long)
    thread.start()
    assert first_started.wait(30)
    short()
    second_done.set()
    thread.join(30)
    assert counts["short"] > 0
    assert counts["long, after the short one ended"] > 0
    assert gc.get_freeze_count() == 0


def test_a_failing_flow_puts_the_heap_back() -> None:
    @flow
    def boom() -> None:
        raise ValueError("no")

    state = boom(return_state=True)
    assert state.is_failed()
    assert gc.get_freeze_count() == 0
    with pytest.raises(ValueError):
        boom()
    assert gc.get_freeze_count() == 0


def test_async_flows_too() -> None:
    @flow
    async def f() -> int:
        await asyncio.sleep(0)
        return gc.get_freeze_count()

    async def main() -> int:
        return await f()  # type: ignore[no-any-return]

    assert f() > 0  # outside an event loop an async flow runs to its end
    assert asyncio.run(main()) > 0  # inside one it is awaited
    assert gc.get_freeze_count() == 0


def test_turned_off_by_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_GC_FREEZE", "false")
    clear_settings_cache()

    @flow
    def f() -> int:
        return gc.get_freeze_count()

    try:
        assert f() == 0
    finally:
        monkeypatch.undo()
        clear_settings_cache()


def test_a_heap_frozen_by_somebody_else_is_left_alone() -> None:
    @flow
    def f(marker: list[int]) -> bool:
        return any(o is marker for o in gc.get_objects())

    gc.freeze()
    try:
        marker = [1, 2, 3]  # made after somebody else's freeze
        assert f(marker) is True  # the flow did not freeze it...
        assert gc.get_freeze_count() > 0  # ...and did not unfreeze theirs
    finally:
        gc.unfreeze()


def test_disabled_collector_left_alone() -> None:
    @flow
    def f() -> int:
        return gc.get_freeze_count()

    gc.disable()
    try:
        assert f() == 0
    finally:
        gc.enable()
    assert gc_scope._active == 0
