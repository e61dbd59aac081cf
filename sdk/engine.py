"""``python -m orch.engine FLOW_RUN_ID`` (also ``orch flow-run execute ID``): run one deployment's flow run.

What every launcher (process, Docker, ECS) starts. It reads the run and its deployment, fetches the deployment's
code bundle by hash from Storage (a local folder or S3) into a temporary folder, imports the entrypoint, and runs the
flow with the run's parameters as *that* run — proposing its states, sending its logs and heartbeats. The exit code
tells the agent what happened:

    0  the run Completed
    1  the run ended Failed or Cancelled (the flow's own outcome, already reported)
    3  the engine could not run the flow (bundle, import or control-plane problem); the run is reported Crashed
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_CRASHED = 3

logger = logging.getLogger("orch.engine")


def execute(flow_run_id: uuid.UUID | str) -> int:
    """Run the flow run to its end; returns the exit code (see the module docstring)."""
    from orch.client import get_client
    from orch.exceptions import OrchError

    client = get_client()
    run_id = uuid.UUID(str(flow_run_id))
    try:
        run = client.read_flow_run(run_id)
        if run.deployment_id is None:
            raise OrchError(
                "The run has no deployment, so there is no code to run (runs of plain scripts run in the script)."
            )
        deployment = client.request("GET", f"/deployments/{run.deployment_id}")
        with tempfile.TemporaryDirectory(prefix="orch-run-") as tmp:
            flow = _load(deployment, Path(tmp))
            return _run(flow, run)
    except OrchError as exc:
        _crash(client, run_id, f"The engine could not run the flow: {exc}")
        return EXIT_CRASHED
    except Exception as exc:
        _crash(client, run_id, f"The engine failed: {type(exc).__name__}: {exc}")
        return EXIT_CRASHED


def _load(deployment: dict[str, Any], tmp: Path) -> Any:
    from orch.deployments.entrypoint import load_flow
    from orch.exceptions import OrchError
    from orch.storage import fetch_bundle

    bundle = deployment.get("code_bundle")
    entrypoint = deployment.get("entrypoint")
    if not bundle or not entrypoint:
        raise OrchError(f"Deployment {deployment.get('name')!r} has no code bundle or entrypoint; run `orch deploy`.")
    # The bundle is the project folder; the entrypoint (path/to/file.py:function) is relative to it.
    root = fetch_bundle(bundle, tmp / "code")
    os.chdir(root)
    return load_flow(entrypoint, root)


def _run(flow: Any, run: Any) -> int:
    from orch._engine.deployment_run import run_existing_flow_run

    state = run_existing_flow_run(flow, run)
    if state.is_completed():
        return EXIT_COMPLETED
    if state.is_crashed():
        return EXIT_CRASHED
    return EXIT_FAILED


def _crash(client: Any, run_id: uuid.UUID, message: str) -> None:
    from orch.control_plane.schemas.states import StateCreate, StateType

    print(message, file=sys.stderr)
    try:
        client.set_flow_run_state(run_id, StateCreate(type=StateType.CRASHED, message=message[:20_000]))
    except Exception as exc:  # the agent or the zombie service will notice the run stopped
        print(f"Could not report the crash to the control plane: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m orch.engine FLOW_RUN_ID", file=sys.stderr)
        sys.exit(2)
    try:
        run_id = uuid.UUID(args[0])
    except ValueError:
        print(f"{args[0]!r} is not a flow run id", file=sys.stderr)
        sys.exit(2)
    code = execute(run_id)
    try:
        from orch._engine.recorder import get_recorder

        get_recorder().flush()
    except Exception:
        logger.warning("could not flush the last records", exc_info=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
