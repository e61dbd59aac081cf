"""What the benchmarks say about the machine they ran on, next to their figures."""

from __future__ import annotations

import statistics
import time


def calibration_ms() -> float:
    """Milliseconds for a fixed pure-Python loop (median of 5): how fast the machine is right now. On the shared VM
    the benchmarks were recorded on it varies by up to 60% within minutes, so figures taken at different times
    compare only next to it."""

    def loop() -> float:
        start = time.process_time()
        total = 0
        for i in range(1_000_000):
            total += i
        return time.process_time() - start

    return round(statistics.median(loop() for _ in range(5)) * 1000, 1)
