"""Flows: a named piece of user code. Runs and deployments hang off a flow."""

from __future__ import annotations

from pydantic import Field

from orch.control_plane.schemas.base import Name, ObjectBase, OrchModel, Tags


class FlowCreate(OrchModel):
    """``POST /api/flows/`` is get-or-create by name, as in Prefect."""

    name: Name
    tags: Tags = Field(default_factory=list)


class FlowUpdate(OrchModel):
    tags: Tags | None = None


class Flow(ObjectBase):
    name: str
    tags: list[str] = Field(default_factory=list)
