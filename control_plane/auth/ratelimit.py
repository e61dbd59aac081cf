"""Failed authentications per source address, in a sliding window: past the limit, the address gets 429.

Only failures count (a wrong, malformed, expired or revoked key); requests without any key are refused with 401 but
are not guesses and do not count. While an address is over the limit even a correct key is refused, so that a
guesser learns nothing. Memory is bounded: at most ``max_addresses`` addresses are tracked, the stalest dropped
first. State lives in the process: each server process and each warm Lambda instance counts on its own, which
bounds the guessing rate per instance; with 262-bit secrets the limit is about noise and load, not about odds.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class FailureLimiter:
    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or ``None`` if it is not blocked."""
        with self._lock:
            failures = self._current(address)
            if failures is None or len(failures) < self.limit:
                return None
            # Blocked until enough failures leave the window to drop below the limit.
            release = failures[len(failures) - self.limit] + self.window
            return max(1, math.ceil(release - self._clock()))

    def record_failure(self, address: str) -> None:
        with self._lock:
            failures = self._current(address)
            if failures is None:
                failures = self._failures[address] = deque()
                while len(self._failures) > self.max_addresses:
                    self._failures.popitem(last=False)
            self._failures.move_to_end(address)
            failures.append(self._clock())
            # Keep only what can still matter.
            while len(failures) > self.limit:
                failures.popleft()

    def _current(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        horizon = self._clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures
