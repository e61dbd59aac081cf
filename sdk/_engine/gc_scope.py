"""While flows run, the objects that already existed are left out of the garbage collector's full collections.

A process that runs a flow holds ~150,000 objects the cyclic garbage collector tracks before the first task starts:
the SDK, pydantic, SQLAlchemy and (embedded) the whole control-plane app. A full collection walks all of them
(~65-90 ms here) and comes every few thousand task runs, because every task leaves objects behind that live long
enough to reach the oldest generation (records waiting for their batch, results held by the flow). That was ~5 µs of
every task run's cost (2-3 full collections per 30,000 tasks), spent re-proving that modules and classes are alive.

So the outermost flow run of the process moves everything alive into the collector's permanent generation when it
starts (``gc.freeze()``, once its client, and so the embedded app, is built) and puts it back when it ends
(``gc.unfreeze()``); subflows and flows running at the same time in other threads share one freeze (a count). Garbage
made while flows run is collected as before. What changes for objects that existed before the flow: if one of them
becomes part of an unreachable reference cycle *during* the flow, it is freed when the last flow ends instead of at
the next full collection (objects without cycles are freed at once, as always: freezing affects only the cycle
collector). ``ORCH_GC_FREEZE=false`` turns this off. A process that froze objects itself (``gc.get_freeze_count()``
above zero when the first flow starts, e.g. a pre-fork server) is left alone.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_active = 0  # flow runs inside the scope, in all threads
_froze = False  # whether this module froze (and so will unfreeze) the heap


def _enabled() -> bool:
    from orch.exceptions import ConfigurationError
    from orch.settings import get_settings

    try:
        return get_settings().gc_freeze
    except ConfigurationError:  # invalid settings are reported where the run needs them, not here
        return False


@contextlib.contextmanager
def flow_heap_frozen() -> Iterator[None]:
    """Freeze the heap for the time the outermost flow run takes (see the module docstring)."""
    global _active, _froze
    with _lock:
        if _active == 0 and gc.isenabled() and _enabled() and gc.get_freeze_count() == 0:
            gc.freeze()
            _froze = True
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _froze:
                gc.unfreeze()
                _froze = False
