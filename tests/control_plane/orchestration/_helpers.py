"""Builders for pure orchestration tests: a run in a given state and a proposal, without any database."""

from __future__ import annotations

import datetime as dt
from typing import Any

from orch.control_plane.orchestration import OrchestrationContext, RunView
from orch.control_plane.schemas.states import DEFAULT_NAMES, State, StateDetails, StateType

NOW = dt.datetime(2026, 11, 22, 12, 0, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    """``NOW`` shifted by ``seconds``."""
    return NOW + dt.timedelta(seconds=seconds)


def st_(
    type_: StateType | str,
    name: str | None = None,
    *,
    timestamp: dt.datetime | None = None,
    scheduled_time: dt.datetime | None = None,
    retriable: bool | None = None,
    message: str | None = None,
) -> State:
    type_ = StateType(type_)
    return State(
        type=type_,
        name=name or DEFAULT_NAMES[type_],
        timestamp=timestamp or at(-100),
        message=message,
        state_details=StateDetails(scheduled_time=scheduled_time, retriable=retriable),
    )


def context(
    initial: State | None,
    proposed: State,
    *,
    now: dt.datetime = NOW,
    kind: str = "flow_run",
    queue_usage: Any = None,
    late_runs_threshold: float = 15.0,
    **run: Any,
) -> OrchestrationContext:
    run.setdefault("state_version", 0 if initial is None else 3)
    return OrchestrationContext(
        kind=kind,  # type: ignore[arg-type]
        run=RunView(state=initial, **run),
        proposed=proposed,
        now=now,
        late_runs_threshold=late_runs_threshold,
        queue_usage=queue_usage,
    )


# A proposal's timestamp in the future is clamped to the server's "now": build proposals with this one so that the
# accepted state's timestamp is the context's ``now``.
FUTURE = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


def proposal(type_: StateType | str, name: str | None = None, **kwargs: Any) -> State:
    kwargs.setdefault("timestamp", FUTURE)
    return st_(type_, name, **kwargs)
