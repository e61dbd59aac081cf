"""The ``Infrastructure`` interface: how an agent launches, watches and stops one flow run.

Every launcher runs the same thing: the orch engine (``python -m orch.engine FLOW_RUN_ID``) with the run's
environment (``ORCH_API_URL``, ``ORCH_API_KEY``, ``ORCH_FLOW_RUN_ID``), as a local process, a Docker container or an
ECS task. The engine reports the run's states itself; the launcher's job is to start it, tell when it stopped and
how (``ExitStatus``), and kill it on cancellation. A launch that fails raises ``InfrastructureError`` with the
reason, which the agent records as the run's ``Crashed`` message.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Protocol

from orch.exceptions import InfrastructureError

# Exit codes of `python -m orch.engine` (see orch/engine.py).
EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_CRASHED = 3


@dataclasses.dataclass
class LaunchRequest:
    """What a launcher needs to start one run."""

    flow_run: Any  # orch.control_plane.schemas.flow_runs.FlowRun
    deployment: dict[str, Any] | None
    env: dict[str, str]
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return str(self.flow_run.id)

    @property
    def command(self) -> list[str]:
        return ["python", "-m", "orch.engine", self.run_id]


@dataclasses.dataclass
class ExitStatus:
    code: int | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.code == EXIT_COMPLETED


class Handle(Protocol):
    """A launched run: its infrastructure's id (pid, container id, task ARN)."""

    ident: str


class Infrastructure(Protocol):
    kind: str

    def launch(self, request: LaunchRequest) -> Handle:
        """Start the run; raise ``InfrastructureError`` with a clear reason if it cannot start."""
        ...

    def poll(self, handle: Handle) -> ExitStatus | None:
        """``None`` while it runs; its ``ExitStatus`` once it stopped."""
        ...

    def kill(self, handle: Handle, grace_seconds: float = 10.0) -> None:
        """Stop it (cancellation): politely, then by force after ``grace_seconds``."""
        ...

    def close(self) -> None: ...


LAUNCHERS = {
    "process": "orch.agents.infrastructure.process:ProcessInfrastructure",
    "docker": "orch.agents.infrastructure.docker:DockerInfrastructure",
    "ecs": "orch.agents.infrastructure.ecs:EcsInfrastructure",
}


def get_infrastructure(kind: str, **options: Any) -> Infrastructure:
    target = LAUNCHERS.get(kind)
    if target is None:
        raise InfrastructureError(f"Unknown infrastructure {kind!r}: use one of {', '.join(LAUNCHERS)}.")
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InfrastructureError(f"The {kind} launcher is not available: {exc}") from None
    infra: Infrastructure = getattr(module, cls_name)(**options)
    return infra
