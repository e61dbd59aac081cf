"""``python -m orch.engine FLOW_RUN_ID`` (also ``orch flow-run execute ID``): run one deployment's flow run.

What every launcher (process, Docker, ECS) starts. It reads the run and its deployment, fetches the deployment's
code bundle by hash from Storage (a local folder or S3) into a temporary folder, imports the entrypoint, and runs the
flow with the run's parameters as *that* run — proposing its states, sending its logs and heartbeats. The exit code
tells the agent what happened:

    0  the run Completed
    1  the run ended Failed or Cancelled (the flow's own outcome, already reported)
    2  bad command line (no valid run id)
    3  the engine could not run the flow (bundle, import or control-plane problem); the run is reported Crashed

``python -m orch.engine --warm`` does the imports first and then reads the run id from stdin: the process launcher
keeps one such engine ready for the next run.

Start-up time is pick-up latency (the agent starts one engine per run), so this module imports little: with
``ORCH_API_URL`` set it never loads the control plane's app, database layer or FastAPI (a test pins that), and
extracted bundles are cached by content hash under ``$ORCH_HOME/bundles/<sha256>`` — a deployment's runs after the
first one skip the download and unpacking. Runs of one deployment share that folder as their working directory;
the code in it is treated as read-only (write outputs elsewhere, e.g. a temporary folder).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

# httpx's package __init__ imports its optional command-line tool (click, rich, pygments: 0.2-0.4 s here) when
# those happen to be installed; the engine never uses it. A None entry makes that import raise ImportError, which
# httpx catches because the CLI is an optional extra.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_CRASHED = 3

logger = logging.getLogger("orch.engine")


def execute(flow_run_id: uuid.UUID | str) -> int:
    """Run the flow run to its end; returns the exit code (see the module docstring)."""
    from orch.client import get_client
    from orch.exceptions import OrchError

    run_id = uuid.UUID(str(flow_run_id))
    # The flow's code sees its run id in the environment, however the engine was started (user code reads it).
    os.environ["ORCH_FLOW_RUN_ID"] = str(run_id)
    try:
        client = get_client()
    except OrchError as exc:
        # Bad settings (e.g. an API URL that is not http): nothing can be reported to a server, so say it here.
        print(f"orch engine: {exc}", file=sys.stderr)
        return EXIT_CRASHED
    try:
        run = client.read_flow_run(run_id)
        if run.deployment_id is None:
            raise OrchError(
                "The run has no deployment, so there is no code to run (runs of plain scripts run in the script)."
            )
        deployment = client.request("GET", f"/deployments/{run.deployment_id}")
        flow = _load(deployment, client.settings.home / "bundles")
        return _run(flow, run)
    except OrchError as exc:
        _crash(client, run_id, f"The engine could not run the flow: {exc}")
        return EXIT_CRASHED
    except Exception as exc:
        _crash(client, run_id, f"The engine failed: {type(exc).__name__}: {exc}")
        return EXIT_CRASHED


def _load(deployment: dict[str, Any], cache: Path) -> Any:
    from orch.deployments.entrypoint import load_flow
    from orch.exceptions import OrchError

    bundle = deployment.get("code_bundle")
    entrypoint = deployment.get("entrypoint")
    if not bundle or not entrypoint:
        raise OrchError(f"Deployment {deployment.get('name')!r} has no code bundle or entrypoint; run `orch deploy`.")
    # The bundle is the project folder; the entrypoint (path/to/file.py:function) is relative to it.
    root = cached_bundle(bundle, cache)
    os.chdir(root)
    return load_flow(entrypoint, root)


def cached_bundle(ref: dict[str, Any], cache: Path) -> Path:
    """The bundle ``ref`` unpacked in ``cache/<sha256>``, fetched and unpacked only the first time.

    Engines starting at once for the same new bundle each unpack into a private folder and rename it into place;
    the first rename wins (a rename is atomic), the others discard their copy. So a folder under its hash's name is
    always complete.
    """
    from orch.exceptions import OrchError
    from orch.storage import fetch_bundle

    sha256 = str(ref.get("sha256") or "")
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        raise OrchError(f"The deployment's code bundle has no valid sha256 ({sha256[:80]!r}).")
    final = cache / sha256
    if final.is_dir():
        return final
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=cache))
    try:
        fetch_bundle(ref, staging)
        try:
            staging.rename(final)
        except OSError:
            if not final.is_dir():  # not "another engine was first"
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


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


WARM_FLAG = "--warm"
# What every run needs, imported ahead by a warm engine (the flow's own modules come with its bundle).
WARM_MODULES = (
    "orch.client",
    "orch.storage",
    "orch.deployments.entrypoint",
    "orch._engine.deployment_run",
    "orch._engine.recorder",
    "orch.control_plane.schemas.states",
    "orch.control_plane.schemas.flow_runs",
)


def _warm_then_read_run_id() -> str | None:
    """``python -m orch.engine --warm``: import what a run needs, then wait for the run id on stdin.

    The process launcher keeps one such engine ready, so a claimed run skips the interpreter start and the imports
    (most of the engine's start-up time). End of input without a run id means "not needed": exit quietly.
    """
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)
    line = sys.stdin.readline().strip()
    if not line:
        return None
    os.environ["ORCH_FLOW_RUN_ID"] = line
    return line


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == [WARM_FLAG]:
        received = _warm_then_read_run_id()
        if received is None:
            sys.exit(0)
        args = [received]
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
        from orch._engine.recorder import existing_recorder

        recorder = existing_recorder()
        if recorder is not None:
            recorder.flush()
    except Exception:
        logger.warning("could not flush the last records", exc_info=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
