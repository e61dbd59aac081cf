"""The process launcher: the engine as a local subprocess.

The child gets the agent's environment plus the run's, its own process group (so cancelling kills the flow's
children too, and the agent's own Ctrl-C does not), and its stdout/stderr are shipped to the run's logs line by
line (``print`` output and tracebacks that the engine's own logging did not capture).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from orch.agents.infrastructure import ExitStatus, LaunchRequest
from orch.exceptions import InfrastructureError

logger = logging.getLogger("orch.agents.process")

LogSink = Callable[[list[dict[str, Any]]], None]


@dataclasses.dataclass
class ProcessHandle:
    ident: str
    proc: subprocess.Popen[bytes]
    pump: threading.Thread


class ProcessInfrastructure:
    kind = "process"

    def __init__(self, *, log_sink: LogSink | None = None, python: str | None = None, **_: Any) -> None:
        self.log_sink = log_sink
        self.python = python or sys.executable

    def launch(self, request: LaunchRequest) -> ProcessHandle:
        env = {**os.environ, **request.env, **{k: str(v) for k, v in (request.overrides.get("env") or {}).items()}}
        cwd = request.overrides.get("working_dir") or None
        command = [self.python, *request.command[1:]]
        try:
            proc = subprocess.Popen(
                command,
                env=env,
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise InfrastructureError(f"Could not start the engine process: {exc}") from None
        pump = threading.Thread(
            target=self._pump, args=(proc, request.run_id), name=f"orch-output-{proc.pid}", daemon=True
        )
        pump.start()
        return ProcessHandle(str(proc.pid), proc, pump)

    def _pump(self, proc: subprocess.Popen[bytes], run_id: str) -> None:
        """Forward the child's output to the run's logs in small batches."""
        assert proc.stdout is not None
        batch: list[dict[str, Any]] = []
        last = time.monotonic()
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            if not line:
                continue
            batch.append(
                {
                    "name": "orch.process",
                    "level": 20,
                    "message": line,
                    "timestamp": dt.datetime.now(dt.UTC).isoformat(),
                    "flow_run_id": run_id,
                }
            )
            if len(batch) >= 100 or time.monotonic() - last > 0.5:
                self._ship(batch)
                batch, last = [], time.monotonic()
        if batch:
            self._ship(batch)

    def _ship(self, batch: list[dict[str, Any]]) -> None:
        if self.log_sink is None:
            return
        try:
            self.log_sink(batch)
        except Exception:
            logger.warning("could not ship %d output lines to the control plane", len(batch), exc_info=True)

    def poll(self, handle: ProcessHandle) -> ExitStatus | None:  # type: ignore[override]
        code = handle.proc.poll()
        if code is None:
            return None
        handle.pump.join(timeout=5)
        if code < 0:
            return ExitStatus(code, f"the engine process was killed by signal {signal.Signals(-code).name}")
        return ExitStatus(code, f"the engine process exited with code {code}")

    def kill(self, handle: ProcessHandle, grace_seconds: float = 10.0) -> None:  # type: ignore[override]
        if handle.proc.poll() is not None:
            return
        try:
            os.killpg(handle.proc.pid, signal.SIGTERM)
            try:
                handle.proc.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                os.killpg(handle.proc.pid, signal.SIGKILL)
                handle.proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        return None
