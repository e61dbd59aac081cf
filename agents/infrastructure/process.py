"""The process launcher: the engine as a local subprocess.

The child gets the agent's environment plus the run's, its own process group (so cancelling kills the flow's
children too, and the agent's own Ctrl-C does not), and its stdout and stderr are shipped to the run's logs line by
line (``print`` output and tracebacks that the engine's own logging did not capture; stderr lines as WARNING).

Deployment ``infra_overrides`` it reads: ``env`` (extra variables) and ``working_dir``.

**Warm engine.** Most of an engine's start-up is the interpreter and its imports, so the launcher keeps one engine
started ahead (``python -m orch.engine --warm``: imports done, waiting for a run id on stdin) and hands the next
run to it; then it starts the next spare. A run with its own ``env`` or ``working_dir`` overrides, or an
environment different from the spare's, gets a fresh process instead. ``ORCH_PROCESS_WARM_ENGINE=false`` turns
this off.
"""

from __future__ import annotations

import contextlib
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
from orch.agents.settings import AgentSettings, get_agent_settings
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

    def __init__(
        self,
        *,
        log_sink: LogSink | None = None,
        python: str | None = None,
        settings: AgentSettings | None = None,
        **_: Any,
    ) -> None:
        self.log_sink = log_sink
        self.python = python or sys.executable
        self.warm = (settings or get_agent_settings()).process_warm_engine
        # the spare engine and the environment it was started with (without the run id)
        self._spare: tuple[subprocess.Popen[bytes], dict[str, str]] | None = None
        self._lock = threading.Lock()

    def _spawn(self, command: list[str], env: dict[str, str], cwd: str | None, stdin: Any) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(
                command,
                env=env,
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=stdin,
                start_new_session=True,
            )
        except OSError as exc:
            raise InfrastructureError(f"Could not start the engine process: {exc}") from None

    def launch(self, request: LaunchRequest) -> ProcessHandle:
        overrides = {k: str(v) for k, v in (request.overrides.get("env") or {}).items()}
        cwd = request.overrides.get("working_dir") or None
        env = {**os.environ, **request.env, **overrides}
        shared = {k: v for k, v in env.items() if k != "ORCH_FLOW_RUN_ID"}
        proc = None
        if self.warm and not overrides and cwd is None:
            proc = self._take_spare(shared, request.run_id)
        if proc is None:
            proc = self._spawn([self.python, *request.command[1:]], env, cwd, subprocess.DEVNULL)
        if self.warm and not overrides and cwd is None:
            self._prepare_spare(shared)
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

    def _take_spare(self, shared: dict[str, str], run_id: str) -> subprocess.Popen[bytes] | None:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is None:
            return None
        proc, spare_env = spare
        if proc.poll() is not None or spare_env != shared:
            self._discard(proc)
            return None
        assert proc.stdin is not None
        try:
            proc.stdin.write(f"{run_id}\n".encode())
            proc.stdin.close()
        except OSError:
            self._discard(proc)
            return None
        return proc

    def _prepare_spare(self, shared: dict[str, str]) -> None:
        with self._lock:
            if self._spare is not None:
                return
            try:
                proc = self._spawn([self.python, "-m", "orch.engine", "--warm"], shared, None, subprocess.PIPE)
            except InfrastructureError as exc:
                logger.warning("no warm engine: %s", exc)
                return
            self._spare = (proc, shared)

    @staticmethod
    def _discard(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()  # end of input: the warm engine exits quietly
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    @staticmethod
    def _pump(pipe: IO[bytes], output: OutputShipper, stream: str) -> None:
        for raw in iter(pipe.readline, b""):
            output.feed(raw, stream)
        pipe.close()

    def poll(self, handle: ProcessHandle) -> ExitStatus | None:
        code = handle.proc.poll()
        if code is None:
            return None
        for pump in handle.pumps:
            pump.join(timeout=5)
        handle.output.flush(final=True)
        if code < 0:
            return ExitStatus(code, f"the engine process was killed by signal {signal.Signals(-code).name}")
        return ExitStatus(code, f"the engine process exited with code {code}")

    def kill(self, handle: ProcessHandle, grace_seconds: float = 10.0) -> None:
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
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            self._discard(spare[0])
