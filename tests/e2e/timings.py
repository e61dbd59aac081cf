"""Wall-clock time of each phase of an end-to-end test, so a slow step shows where it is.

``tests/e2e/conftest.py`` hands each test a ``Timings`` (fixture ``timings``) and prints every report in pytest's
terminal summary, next to the emulators' start and stop times.
"""

from __future__ import annotations

import time


class Timings:
    def __init__(self, name: str) -> None:
        self.name = name
        self.started = time.monotonic()
        self.last = self.started
        self.phases: list[tuple[str, float]] = []

    def mark(self, phase: str) -> None:
        """Record the time since the previous mark (or the start) as ``phase``."""
        now = time.monotonic()
        self.phases.append((phase, now - self.last))
        self.last = now

    def report(self) -> str:
        lines = [f"  {name:<60} {seconds:6.1f} s" for name, seconds in self.phases]
        lines.append(f"  {'total (after the session fixtures)':<60} {time.monotonic() - self.started:6.1f} s")
        return f"e2e timings of {self.name}:\n" + "\n".join(lines)
