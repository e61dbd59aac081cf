"""ECS task state changes → run states. The safety net behind the engine: when a Fargate task stops and its run did
not reach a final state (the task failed to start, the image could not be pulled, the container was OOM-killed or
exited non-zero before reporting), the run is proposed ``Crashed`` with ECS's stop reason — through the
orchestration rules, so a run that did finish is left alone.

The ECS launcher tags each task with the run: ``startedBy`` is the flow run id and the container environment holds
``ORCH_FLOW_RUN_ID``; both appear in the "ECS Task State Change" event.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from orch.control_plane.db.engine import Database
from orch.control_plane.models import flow_runs
from orch.control_plane.schemas.states import TERMINAL_STATES, StateCreate, StateType

logger = logging.getLogger("orch.control_plane.ecs_events")


def run_id_of(detail: dict[str, Any]) -> uuid.UUID | None:
    for override in (detail.get("overrides") or {}).get("containerOverrides") or []:
        for env in override.get("environment") or []:
            if env.get("name") == "ORCH_FLOW_RUN_ID":
                try:
                    return uuid.UUID(str(env.get("value")))
                except ValueError:
                    return None
    started_by = detail.get("startedBy")
    if started_by:
        try:
            return uuid.UUID(started_by)
        except ValueError:
            return None
    return None


def describe_stop(detail: dict[str, Any]) -> tuple[str, bool]:
    """A one-line reason and whether the task ended cleanly (every essential container exited 0)."""
    stop_code = detail.get("stopCode") or "unknown"
    reason = detail.get("stoppedReason") or ""
    codes = [c.get("exitCode") for c in detail.get("containers") or []]
    clean = bool(codes) and all(code == 0 for code in codes) and stop_code != "TaskFailedToStart"
    exit_part = ", ".join(f"exit code {c}" if c is not None else "no exit code" for c in codes) or "no container ran"
    return f"ECS task stopped ({stop_code}): {reason} [{exit_part}]".replace(":  [", " [").strip(), clean


def handle_task_state_change(db: Database, event: dict[str, Any]) -> bool:
    """Apply one EventBridge event; returns True when it changed a run."""
    if event.get("detail-type") != "ECS Task State Change":
        return False
    detail = event.get("detail") or {}
    if detail.get("lastStatus") != "STOPPED":
        return False
    run_id = run_id_of(detail)
    if run_id is None:
        return False
    message, clean = describe_stop(detail)
    with db.session() as session:
        run = flow_runs.read(session, run_id)
        if run is None or run.state_type is None or StateType(run.state_type) in TERMINAL_STATES:
            return False
        if run.state_type == StateType.CANCELLING.value:
            proposed = StateCreate(type=StateType.CANCELLED, message=message)
        elif clean:
            proposed = StateCreate(
                type=StateType.CRASHED, message=f"{message}; the flow exited without reporting a final state"
            )
        else:
            proposed = StateCreate(type=StateType.CRASHED, message=message)
        result = flow_runs.set_state(session, run_id, proposed)
    accepted = result is not None and result.status.value == "ACCEPT"
    logger.info("ECS stop for run %s: %s (%s)", run_id, message, "recorded" if accepted else "ignored")
    return accepted
