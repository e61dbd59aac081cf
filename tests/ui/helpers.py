"""Helpers for the UI tests: runs with task runs, logs and a failure made through the model layer, and a UI client
that logs in and reads CSRF tokens the way a browser does."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from orch.control_plane.db.engine import Database


@dataclass
class Seeded:
    flow_id: uuid.UUID
    deployment_id: uuid.UUID
    running: uuid.UUID
    failed: uuid.UUID
    child: uuid.UUID


def _state(type_: str, **details: Any) -> Any:
    from orch.control_plane.schemas.states import StateCreate

    return StateCreate.model_validate({"type": type_, "state_details": details})


def seed(db: Database) -> Seeded:
    """A flow with a deployment (parameter schema), a running run with task runs and logs, a failed run with a
    traceback, and a subflow run started by one of the running run's task runs."""
    from orch.control_plane.models import deployments, flow_runs, flows, logs, task_runs
    from orch.control_plane.schemas.deployments import DeploymentCreate
    from orch.control_plane.schemas.flow_runs import FlowRunCreate
    from orch.control_plane.schemas.flows import FlowCreate
    from orch.control_plane.schemas.logs import LogCreate
    from orch.control_plane.schemas.states import StateCreate, StateDetails, StateType
    from orch.control_plane.schemas.task_runs import TaskRunCreate

    now = dt.datetime.now(dt.UTC)
    with db.session() as session:
        flow = flows.create(session, FlowCreate(name="etl"))
        deployment, _ = deployments.upsert(
            session,
            DeploymentCreate.model_validate(
                {
                    "flow_id": flow.id,
                    "name": "daily",
                    "work_queue_name": "default",
                    "parameters": {"who": "world"},
                    "parameter_schema": {
                        "type": "object",
                        "properties": {
                            "who": {"type": "string", "title": "who"},
                            "times": {"type": "integer", "title": "times", "default": 1, "minimum": 0},
                            "excited": {"type": "boolean", "title": "excited", "default": False},
                            "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
                            "items": {"type": "array", "items": {"type": "integer"}, "default": [1]},
                        },
                        "required": ["who"],
                    },
                    "schedules": [{"schedule": {"cron": "0 2 * * *", "timezone": "Europe/Paris"}}],
                }
            ),
        )
        running, _ = flow_runs.create(
            session,
            FlowRunCreate(
                flow_id=flow.id,
                name="busy-otter",
                deployment_id=deployment.id,
                tags=["nightly"],
                parameters={"who": "ada"},
                state=_state("SCHEDULED", scheduled_time=now.isoformat()),
            ),
        )
        for step in ("PENDING", "RUNNING"):
            flow_runs.set_state(session, running.id, StateCreate(type=StateType(step)))
        parent_task = None
        for i in range(3):
            task = task_runs.create(
                session,
                TaskRunCreate(flow_run_id=running.id, task_key=f"extract-{i}", name=f"extract-{i}"),
            )
            task_runs.set_state(session, task.id, StateCreate(type=StateType.RUNNING))
            if i < 2:
                task_runs.set_state(session, task.id, StateCreate(type=StateType.COMPLETED))
            parent_task = task
        assert parent_task is not None
        logs.create_many(
            session,
            [
                LogCreate(
                    level=40 if i == 7 else 20,
                    message=f"processed batch {i}" if i != 7 else "batch 7 had a bad row",
                    timestamp=now + dt.timedelta(milliseconds=i),
                    flow_run_id=running.id,
                )
                for i in range(250)
            ],
        )
        child, _ = flow_runs.create(
            session,
            FlowRunCreate(
                flow_id=flow.id, name="child-run", parent_task_run_id=parent_task.id, state=_state("RUNNING")
            ),
        )
        failed, _ = flow_runs.create(session, FlowRunCreate(flow_id=flow.id, name="sad-heron", state=_state("RUNNING")))
        flow_runs.set_state(
            session,
            failed.id,
            StateCreate(
                type=StateType.FAILED,
                message="Flow run failed: ValueError('no rows')",
                state_details=StateDetails(traceback="Traceback (most recent call last):\nValueError: no rows"),
            ),
        )
        return Seeded(flow.id, deployment.id, running.id, failed.id, child.id)


def create_key(db: Database, scope: str, name: str | None = None) -> str:
    from orch.control_plane.models import api_keys

    with db.session() as session:
        _, key = api_keys.create(session, name=name or f"{scope}-key", scope=scope)
        return key.full


def state_of(db: Database, run_id: uuid.UUID) -> str | None:
    from orch.control_plane.models import flow_runs

    with db.session(write=False) as session:
        run = flow_runs.read(session, run_id)
        return run.state_type if run is not None else None


_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


@contextmanager
def ui_client(app: Any, base_url: str = "http://127.0.0.1:4200") -> Iterator[httpx.Client]:
    """A browser-like client on the in-process app: keeps cookies, does not follow redirects."""
    from orch.client._embedded import EmbeddedTransport

    with httpx.Client(transport=EmbeddedTransport(app), base_url=base_url, follow_redirects=False) as client:
        yield client


def login(client: httpx.Client, key: str) -> httpx.Response:
    page = client.get("/login")
    assert page.status_code == 200, page.text
    return client.post("/login", data={"key": key, "csrf": csrf_from(page.text), "next": "/runs"})
