"""Typed calls to the deployments API over ``OrchClient.request`` (the client has no deployment methods of its own)."""

from __future__ import annotations

import uuid
from typing import Any

from orch.control_plane.schemas.deployments import Deployment, UpcomingRun
from orch.control_plane.schemas.flow_runs import FlowRun
from orch.exceptions import InvalidInput

Id = uuid.UUID | str


def split_name(full_name: str) -> tuple[str, str]:
    """``FLOW/DEPLOYMENT`` -> (flow, deployment)."""
    flow, sep, name = full_name.partition("/")
    if not sep or not flow or not name or "/" in name:
        raise InvalidInput(f"{full_name!r} is not a deployment name: use FLOW/DEPLOYMENT, e.g. hello/nightly.")
    return flow, name


def create_deployment(client: Any, body: dict[str, Any]) -> Deployment:
    return Deployment.model_validate(client.request("POST", "/deployments/", json=body))


def read_deployment(client: Any, deployment_id: Id) -> Deployment:
    return Deployment.model_validate(client.request("GET", f"/deployments/{deployment_id}"))


def read_deployment_by_name(client: Any, full_name: str) -> Deployment:
    from urllib.parse import quote

    flow, name = split_name(full_name)
    path = f"/deployments/name/{quote(flow, safe='')}/{quote(name, safe='')}"
    return Deployment.model_validate(client.request("GET", path))


def read_deployments(client: Any, body: dict[str, Any] | None = None) -> list[Deployment]:
    return [Deployment.model_validate(d) for d in client.request("POST", "/deployments/filter", json=body or {})]


def create_flow_run_from_deployment(client: Any, deployment_id: Id, body: dict[str, Any]) -> FlowRun:
    return FlowRun.model_validate(client.request("POST", f"/deployments/{deployment_id}/create_flow_run", json=body))


def upcoming(client: Any, deployment_id: Id, n: int = 10) -> list[UpcomingRun]:
    answer = client.request("GET", f"/deployments/{deployment_id}/upcoming", params={"n": n})
    return [UpcomingRun.model_validate(u) for u in answer]


def set_paused(client: Any, deployment_id: Id, paused: bool) -> None:
    client.request("POST", f"/deployments/{deployment_id}/{'pause' if paused else 'resume'}")


def delete_deployment(client: Any, deployment_id: Id) -> None:
    client.request("DELETE", f"/deployments/{deployment_id}")
