"""Free TCP ports for the servers the tests start (uvicorn, PostgreSQL, moto, LocalStack), safe under pytest-xdist.

Asking the kernel for port 0 and handing the number to a child process leaves a window in which the port is free
again: another xdist worker asking at the same moment can be given the same number, and any outgoing connection
(httpx, psycopg, boto3) can take it as its source port, since port-0 binds and connect() share the ephemeral
range. Then a server fails to bind, at random.

So ports come from below the kernel's ephemeral range (which connect() never uses), and each xdist worker draws
from its own slice of it (``PYTEST_XDIST_WORKER``: gw0, gw1, ...), starting at a random offset so that two test
sessions on one machine rarely probe the same numbers. A port is handed out once per process and only after a
bind probe shows that nothing holds it. Where the ephemeral range leaves no room below it, this falls back to
port 0.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

# Above the well-known service ports the tests talk to (PostgreSQL 5432, orch 4200, LocalStack 4566, moto 5000).
LOWEST_PORT = 10_000


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux default 32768; elsewhere assume the IANA 49152)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49_152


def _worker_slice() -> range:
    """This process's share of the ports below the ephemeral range: one slice per xdist worker."""
    high = _ephemeral_low()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), index + 1)
    size = (high - LOWEST_PORT) // count
    start = LOWEST_PORT + index * size
    return range(start, start + size)


def _candidates() -> Iterator[int]:
    ports = _worker_slice()
    if len(ports) < 100:
        return iter(())
    offset = random.randrange(len(ports))
    return itertools.chain(ports[offset:], ports[:offset])


_lock = threading.Lock()
_next: Iterator[int] | None = None


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing holds now and that no other worker of this session will be given."""
    global _next
    with _lock:
        if _next is None:
            _next = _candidates()
        for port in _next:
            if _bindable(port):
                return port
        # the slice is used up (or there is none): let the kernel choose, and restart the slice next time
        _next = None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
