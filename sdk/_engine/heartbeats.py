"""Heartbeats: one background thread tells the control plane which flow runs in this process are alive.

The zombie service marks a ``Running`` flow run ``Crashed`` when it has been silent longer than the server's
heartbeat timeout, so every running flow run is heartbeated every :data:`INTERVAL` seconds. The answer carries the
run's state type; ``CANCELLING`` sets the run's cancel event and the flow stops at its next task call. The thread
starts with the first registered run and sleeps while there is none.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

logger = logging.getLogger("orch.heartbeats")

# Seconds between heartbeats (well under the server's default 90 s heartbeat timeout).
INTERVAL = 10.0


def _interval() -> float:
    """``ORCH_HEARTBEAT_INTERVAL`` (default :data:`INTERVAL`); keep it well under the server's heartbeat timeout.
    Settings that became invalid since the runs started (the environment changed in-process) must not stop the
    heartbeats of runs still going: the default is used, and the next wake-up reads them again."""
    from orch.settings import get_settings

    try:
        return get_settings().heartbeat_interval
    except Exception as exc:
        logger.debug("Heartbeat interval: settings unreadable (%s); using %s s", exc, INTERVAL)
        return INTERVAL


_runs: dict[uuid.UUID, tuple[Any, threading.Event]] = {}
_lock = threading.Lock()
_wake = threading.Event()
_thread: threading.Thread | None = None


def register(client: Any, flow_run_id: uuid.UUID, cancel_event: threading.Event) -> None:
    global _thread
    with _lock:
        _runs[flow_run_id] = (client, cancel_event)
        if _thread is None:
            _thread = threading.Thread(target=_loop, name="orch-heartbeats", daemon=True)
            _thread.start()


def unregister(flow_run_id: uuid.UUID) -> None:
    with _lock:
        _runs.pop(flow_run_id, None)


def beat_now() -> None:
    """Send the heartbeats at once instead of at the next interval (tests and shutdown use it)."""
    _wake.set()


def _loop() -> None:
    while True:
        _wake.wait(_interval())
        _wake.clear()
        with _lock:
            runs = list(_runs.items())
        for flow_run_id, (client, cancel_event) in runs:
            try:
                answer = client.heartbeat_flow_run(flow_run_id)
            except Exception as exc:
                logger.debug("Heartbeat of flow run %s failed: %s", flow_run_id, exc)
                continue
            state_type = getattr(answer, "state_type", None)
            if state_type is not None and str(state_type) in ("CANCELLING", "CANCELLED"):
                cancel_event.set()
