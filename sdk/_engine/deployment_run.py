"""Run a flow as an *existing* flow run: the one a deployment's schedule or ``orch deployment run`` created and an
agent claimed (it is ``Pending``). Used by ``python -m orch.engine``.

The difference from calling the flow in a script is only the start: instead of creating a run, the engine adopts
the claimed one, makes sure the server knows the flow's retry policy (when the deployment did not set one), and
proposes ``Running``. Everything after that — the body, retries decided by the server, hooks, the final state — is
the regular flow engine.
"""

from __future__ import annotations

import asyncio
from typing import Any

from orch._engine.flow_engine import FlowRunEngine, drive, drive_async
from orch._engine.gc_scope import flow_heap_frozen
from orch.exceptions import FlowRunAborted
from orch.states import State, StateType


class AdoptingEngine(FlowRunEngine):
    """A flow engine for a run that exists already."""

    def __init__(self, flow: Any, run: Any) -> None:
        params = dict(run.parameters or {})
        if flow.validate_parameters:
            params = flow.validate(flow.binder.bind((), params))
        super().__init__(flow, params)
        self.existing = run
        self.flow_run_id = run.id
        self.flow_run = run
        self.name = run.name

    def create(self) -> State:
        from orch.control_plane.schemas.flow_runs import FlowRunUpdate, RunPolicy

        policy = self.existing.empirical_policy
        if policy.retries == 0 and self.flow.retries:
            self.client.update_flow_run(
                self.flow_run_id,
                FlowRunUpdate(
                    empirical_policy=RunPolicy(retries=self.flow.retries, retry_delay=self.flow.retry_delay_seconds)
                ),
            )
        return self.propose(State(StateType.RUNNING))


def run_existing_flow_run(flow: Any, run: Any) -> State:
    """Drive ``run`` (a FlowRun from the API) to its final state with ``flow``'s code; return that state.

    The flow engine's own driver runs the body, retries and hooks; an ABORT from the control plane (the run was
    cancelled) ends here as the Cancelled state instead of an exception, since the engine's process just exits.
    """
    if flow.is_async:
        return asyncio.run(_run_async(flow, run))
    engine = AdoptingEngine(flow, run)
    with flow_heap_frozen():
        state = engine.create()
        if state.type is not StateType.RUNNING:
            return state
        try:
            return drive(engine, state)
        except FlowRunAborted:
            return State(StateType.CANCELLED, message="Aborted by the control plane.")


async def _run_async(flow: Any, run: Any) -> State:
    engine = AdoptingEngine(flow, run)
    with flow_heap_frozen():
        state = engine.create()
        if state.type is not StateType.RUNNING:
            return state
        try:
            return await drive_async(engine, state)
        except FlowRunAborted:
            return State(StateType.CANCELLED, message="Aborted by the control plane.")
