"""Counters of what the control plane does (runs created, claims, transitions), with pluggable sinks.

The model layer calls ``count(name, value, **dimensions)``; by default nothing listens and it costs a function
call. The Lambda handlers install a sink that turns counts into CloudWatch metrics (Powertools EMF); a server can
install one that keeps totals. Sinks must never raise into the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

Sink = Callable[[str, float], None]

RUN_CREATED = "RunsCreated"
RUN_CLAIMED = "RunsClaimed"
TRANSITION = "StateTransitions"
TRANSITION_REFUSED = "StateTransitionsRefused"

_sinks: list[Sink] = []
_log = logging.getLogger("orch.control_plane.telemetry")


def add_sink(sink: Sink) -> None:
    if sink not in _sinks:
        _sinks.append(sink)


def remove_sink(sink: Sink) -> None:
    if sink in _sinks:
        _sinks.remove(sink)


def count(name: str, value: float = 1.0) -> None:
    for sink in _sinks:
        try:
            sink(name, value)
        except Exception:  # a metrics problem must never fail a request
            _log.debug("telemetry sink failed", exc_info=True)
