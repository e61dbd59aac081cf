"""``/api/agents``: agents report themselves (heartbeat) and are listed with their last-seen time."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from orch.control_plane.api.deps import get_db
from orch.control_plane.api.security import Scope, requires
from orch.control_plane.db.engine import Database
from orch.control_plane.models import work_queues as model
from orch.control_plane.schemas.work_queues import Agent, AgentHeartbeat

router = APIRouter(prefix="/agents", tags=["agents"])


@router.post("/heartbeat", dependencies=[requires(Scope.AGENT)])
def agent_heartbeat(data: AgentHeartbeat, db: Database = Depends(get_db)) -> Agent:
    with db.session() as session:
        return Agent.model_validate(model.agent_heartbeat(session, data))


@router.post("/filter", dependencies=[requires(Scope.READ)])
def filter_agents(db: Database = Depends(get_db)) -> list[Agent]:
    with db.session(write=False) as session:
        return [Agent.model_validate(a) for a in model.agents(session)]
