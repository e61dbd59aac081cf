"""The process launcher: the engine as a local subprocess.

The child gets the agent's environment plus the run's, its own process group (so cancelling kills the flow's
children too, and the agent's own Ctrl-C does not), and its stdout and stderr are shipped to the run's logs line by
line (``print`` output and tracebacks that the engine's own logging did not capture; stderr lines as WARNING).

Deployment ``infra_overrides`` it reads: ``env`` (extra variables) and ``working_dir``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import IO, Any

from orch.agents.infrastructure import ExitStatus, LaunchRequest
from orch.agents.infrastructure._output import LogSink, OutputShipper
from orch.exceptions import InfrastructureError

logger = logging.getLogger("orch.agents.process")


@dataclasses.dataclass
class ProcessHandle:
    ident: str
    proc: subprocess.Popen[bytes]
    pumps: list[threading.Thread]
    output: OutputShipper


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
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise InfrastructureError(f"Could not start the engine process: {exc}") from None
        output = OutputShipper(self.log_sink, request.run_id, "process")
        pumps = []
        for stream, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            assert pipe is not None
            pump = threading.Thread(
                target=self._pump, args=(pipe, output, stream), name=f"orch-{stream}-{proc.pid}", daemon=True
            )
            pump.start()
            pumps.append(pump)
        return ProcessHandle(str(proc.pid), proc, pumps, output)

    @staticmethod
    def _pump(pipe: IO[bytes], output: OutputShipper, stream: str) -> None:
        for raw in iter(pipe.readline, b""):
            output.feed(raw, stream)
        pipe.close()

    def poll(self, handle: ProcessHandle) -> ExitStatus | None:  # type: ignore[override]
        code = handle.proc.poll()
        if code is None:
            return None
        for pump in handle.pumps:
            pump.join(timeout=5)
        handle.output.flush(final=True)
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
