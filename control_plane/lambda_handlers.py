"""AWS Lambda entry points of the serverless control plane. One thin module; each handler calls code the local
server runs too.

- ``api_handler``: the FastAPI app through Mangum (HTTP API v2 and Function URL events).
- ``schedule_handler``: invoked by EventBridge Scheduler with ``{"deployment_id", "schedule_id",
  "scheduled_time"}``: creates the scheduled run idempotently (a duplicate delivery is a no-op) and enqueues it.
- ``services_handler``: the services tick (EventBridge ``rate(1 minute)``, directly or through SQS): scheduler
  fallback for rrules, late runs, zombies, dispatch of due runs, retention.
- ``ecs_events_handler``: SQS records carrying EventBridge "ECS Task State Change" events; a stopped task whose
  run did not finish (TaskFailedToStart, non-zero exit) marks the run Crashed with the stop reason.

Logging is Powertools' structured JSON with the request or run id as correlation id; metrics (runs created, claims,
transitions) go out as CloudWatch EMF; tracing is X-Ray when enabled. The module imports only what every handler
needs; the app, the database and AWS clients are built on first use and kept for the container's life. Database
connections come from the secret in ``ORCH_DATABASE_SECRET_ARN`` through RDS Proxy with no client-side pool.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading
import uuid
import warnings
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from orch.control_plane import telemetry
from orch.control_plane.settings import get_settings

# Requests such as /api/health record no metric; Powertools would warn about that on every one of them.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

logger = Logger(service="orch")
metrics = Metrics(namespace="orch", service="orch")

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

_lock = threading.Lock()
_state: dict[str, Any] = {}


def _tracer() -> Any:
    """Powertools' X-Ray tracer, built only when the function has active tracing (it costs ~0.3 s to import)."""
    if "tracer" not in _state:
        tracer = None
        if get_settings().xray_tracing:
            from aws_lambda_powertools import Tracer

            tracer = Tracer(service="orch")
        _state["tracer"] = tracer
    return _state["tracer"]


def traced(handler: Handler) -> Handler:
    """Trace a handler with X-Ray when tracing is active; a plain call otherwise."""

    @functools.wraps(handler)
    def wrapper(event: dict[str, Any], context: Any) -> dict[str, Any]:
        tracer = _tracer()
        if tracer is None:
            return handler(event, context)
        result: dict[str, Any] = tracer.capture_lambda_handler(handler)(event, context)
        return result

    return wrapper


def _metric_sink(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def _database() -> Any:
    """The database, migrated and bootstrapped once per container."""
    with _lock:
        db = _state.get("db")
        if db is None:
            from orch.control_plane.db import migrate
            from orch.control_plane.db.engine import get_database

            settings = get_settings()
            db = get_database()
            migrate.ensure_up_to_date(db)
            _bootstrap_admin_key(db, settings)
            telemetry.add_sink(_metric_sink)
            _state["db"] = db
        return db


def _bootstrap_admin_key(db: Any, settings: Any) -> None:
    """Store the hash of the first admin key from Secrets Manager, if the stack created one and none exists."""
    arn = settings.bootstrap_key_secret_arn
    if not arn:
        return
    try:
        from orch.control_plane.auth import ensure_bootstrap_key
    except ImportError:  # pragma: no cover - auth is part of every build
        logger.warning("auth module missing; bootstrap key not installed")
        return
    import boto3

    value = boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    ensure_bootstrap_key(db, value.strip())


def _app() -> Any:
    app = _state.get("app")
    if app is None:
        db = _database()
        with _lock:
            app = _state.get("app")
            if app is None:
                from orch.control_plane.api.app import create_app

                app = _state["app"] = create_app(get_settings(), database=db)
    return app


def _mangum() -> Any:
    handler = _state.get("mangum")
    if handler is None:
        from mangum import Mangum

        handler = _state["mangum"] = Mangum(_app(), lifespan="off")
    return handler


# clear_state: keys appended in one invocation (run id, correlation id) must not leak into the next one.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@traced
@metrics.log_metrics
def api_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """HTTP API v2 / Function URL events → the FastAPI app."""
    response: dict[str, Any] = _mangum()(event, context)
    return response


@logger.inject_lambda_context(clear_state=True)
@traced
@metrics.log_metrics
def schedule_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One EventBridge Scheduler firing → one scheduled run (idempotent), enqueued for an agent."""
    from orch.control_plane.services.scheduler import handle_schedule_trigger

    try:
        deployment_id = uuid.UUID(str(event["deployment_id"]))
        schedule_id = uuid.UUID(str(event["schedule_id"])) if event.get("schedule_id") else None
        scheduled_time = dt.datetime.fromisoformat(str(event["scheduled_time"]).replace("Z", "+00:00"))
    except (KeyError, ValueError) as exc:
        # A malformed event will never succeed: log it and do not make EventBridge retry it forever.
        logger.error("bad schedule event", extra={"error": str(exc), "event_keys": sorted(event)})
        return {"status": "rejected", "reason": f"bad event: {exc}"}
    logger.set_correlation_id(f"{deployment_id}@{scheduled_time.isoformat()}")
    run_id = handle_schedule_trigger(_database(), deployment_id, schedule_id, scheduled_time)
    if run_id is not None:
        logger.append_keys(flow_run_id=str(run_id))
    return {"status": "ok", "flow_run_id": str(run_id) if run_id else None}


@logger.inject_lambda_context(clear_state=True)
@traced
@metrics.log_metrics
def services_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run every background service once (however many ticks this event carries: they are idempotent)."""
    from orch.control_plane.services.loop import run_once

    results = run_once(_database(), get_settings())
    logger.info("services tick", extra={"results": results})
    return {"status": "ok", "results": results}


@logger.inject_lambda_context(clear_state=True)
@traced
@metrics.log_metrics
def ecs_events_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """ECS task state changes (via SQS) → Crashed runs for tasks that stopped without finishing their run.

    Answers SQS partial-batch failures, so only the records that failed come back.
    """
    from orch.control_plane.ecs_events import handle_task_state_change

    failures = []
    handled = 0
    for record in event.get("Records", [event] if "detail" in event else []):
        try:
            body = json.loads(record["body"]) if "body" in record else record
            if handle_task_state_change(_database(), body):
                handled += 1
        except Exception:
            logger.exception("ECS event failed", extra={"message_id": record.get("messageId")})
            if "messageId" in record:
                failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures, "handled": handled}
