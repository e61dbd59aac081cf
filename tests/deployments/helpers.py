"""Test helpers: a deployment with schedules, made through the model layer (no HTTP)."""

from __future__ import annotations

import uuid
from typing import Any

from orch.control_plane.db.engine import Database


def make_deployment(
    db: Database,
    *,
    flow: str = "hello",
    name: str = "nightly",
    schedules: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> uuid.UUID:
    from orch.control_plane.models import deployments, flows
    from orch.control_plane.schemas.deployments import DeploymentCreate
    from orch.control_plane.schemas.flows import FlowCreate

    with db.session() as session:
        flow_row = flows.create(session, FlowCreate(name=flow))
        data = DeploymentCreate.model_validate(
            {
                "flow_id": flow_row.id,
                "name": name,
                "schedules": [{"schedule": s} for s in (schedules or [])],
                **fields,
            }
        )
        row, _ = deployments.upsert(session, data)
        return row.id


def runs_of(db: Database, deployment_id: uuid.UUID) -> list[Any]:
    import sqlalchemy as sa

    from orch.control_plane.db import orm

    with db.session(write=False) as session:
        query = (
            sa.select(orm.FlowRun)
            .where(orm.FlowRun.deployment_id == deployment_id)
            .order_by(orm.FlowRun.expected_start_time)
        )
        return list(session.scalars(query))
