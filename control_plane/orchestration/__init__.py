"""Orchestration: the only place that decides whether a run's state may change.

A client (the SDK, an agent, a service, the UI) *proposes* a state. ``propose()`` runs the proposal through an ordered
policy of small rules (``rules.py``); each rule may let it pass, change it, or answer REJECT, WAIT or ABORT. When the
answer is ACCEPT (or a REJECT that redirects the run to another state, as for retries), the bookkeeping in
``bookkeeping.py`` updates the run's counters and timestamps. ``orch.control_plane.models.flow_runs.set_state`` then
writes the result with optimistic concurrency on ``state_version``.

Flow runs go through ``CoreFlowPolicy`` one transition at a time. Task runs are client-orchestrated: the SDK decides
their states and the server checks each recorded state against ``CoreTaskPolicy`` when the batch arrives.
``force=True`` swaps in ``MinimalPolicy``, which still keeps the bookkeeping and refuses nothing.
"""

from orch.control_plane.orchestration.context import OrchestrationContext, RunView
from orch.control_plane.orchestration.policies import (
    CoreFlowPolicy,
    CoreTaskPolicy,
    MinimalPolicy,
    Policy,
    propose,
)

__all__ = [
    "CoreFlowPolicy",
    "CoreTaskPolicy",
    "MinimalPolicy",
    "OrchestrationContext",
    "Policy",
    "RunView",
    "propose",
]
