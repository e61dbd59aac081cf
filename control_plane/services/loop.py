"""The services loop of ``orch server start``: every service's ``tick`` once per interval, in a worker thread.

A failing tick is logged and retried on the next interval; it never stops the loop or the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from orch.control_plane.db.engine import Database
from orch.control_plane.settings import ServerSettings

logger = logging.getLogger("orch.control_plane.services")

# Services in the order they run each tick. Modules that do not exist yet are skipped.
SERVICES: list[str] = [
    "orch.control_plane.services.scheduler",
    "orch.control_plane.services.late_runs",
    "orch.control_plane.services.zombies",
    "orch.control_plane.services.dispatcher",
    "orch.control_plane.services.retention",
]


def available_services() -> list[tuple[str, Callable[..., int]]]:
    found = []
    for name in SERVICES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        found.append((name.rsplit(".", 1)[-1], module.tick))
    return found


def run_once(db: Database, settings: ServerSettings) -> dict[str, Any]:
    """Run every service once; returns what each did (or the error it hit)."""
    results: dict[str, Any] = {}
    for name, tick in available_services():
        try:
            results[name] = tick(db, settings)
        except Exception as exc:  # one failing service must not stop the others
            logger.exception("service %s failed", name)
            results[name] = f"error: {type(exc).__name__}"
    return results


async def start_services(db: Database, settings: ServerSettings) -> Callable[[], Awaitable[None]]:
    stopping = asyncio.Event()

    async def loop() -> None:
        while not stopping.is_set():
            await asyncio.to_thread(run_once, db, settings)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=settings.services_interval)

    task = asyncio.create_task(loop(), name="orch-services")

    async def stop() -> None:
        stopping.set()
        await task

    return stop
