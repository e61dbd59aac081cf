"""Forward a run's raw output (a process's pipes, a container's log stream) to the run's logs.

The engine sends its own logs through the API; what arrives here is what it could not: ``print`` output of the
flow, warnings, tracebacks of a crash before logging started. Output comes in arbitrary chunks; it is cut into
lines and shipped in small batches (at most every half second, or every 100 lines) through ``log_sink``, the
agent's ``client.create_logs``. stdout lines are INFO, stderr lines WARNING, so a traceback stands out in the UI.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("orch.agents")

LogSink = Callable[[list[dict[str, Any]]], None]
LEVELS = {"stdout": logging.INFO, "stderr": logging.WARNING}


class OutputShipper:
    """Thread-safe line splitter and batcher for one run's output."""

    def __init__(self, log_sink: LogSink | None, run_id: str, source: str) -> None:
        self.log_sink = log_sink
        self.run_id = run_id
        self.source = source  # "process", "docker"...: shown as the log's name, orch.<source>.<stream>
        self._partial: dict[str, bytes] = {}
        self._batch: list[dict[str, Any]] = []
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def feed(self, chunk: bytes, stream: str = "stdout") -> None:
        with self._lock:
            data = self._partial.pop(stream, b"") + chunk
            *lines, rest = data.split(b"\n")
            if rest:
                self._partial[stream] = rest
            for line in lines:
                self._add(line, stream)
            due = len(self._batch) >= 100 or time.monotonic() - self._last > 0.5
        if due:
            self.flush()

    def _add(self, raw: bytes, stream: str) -> None:
        line = raw.decode(errors="replace").rstrip("\r")
        if not line.strip():
            return
        self._batch.append(
            {
                "name": f"orch.{self.source}.{stream}",
                "level": LEVELS.get(stream, logging.INFO),
                "message": line,
                "timestamp": dt.datetime.now(dt.UTC).isoformat(),
                "flow_run_id": self.run_id,
            }
        )

    def flush(self, final: bool = False) -> None:
        with self._lock:
            if final:
                for stream, rest in self._partial.items():
                    self._add(rest, stream)
                self._partial.clear()
            batch, self._batch = self._batch, []
            self._last = time.monotonic()
        if not batch or self.log_sink is None:
            return
        try:
            self.log_sink(batch)
        except Exception as exc:
            logger.warning("could not ship %d output lines of run %s: %s", len(batch), self.run_id, exc)
