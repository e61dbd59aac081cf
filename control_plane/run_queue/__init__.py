"""The RunQueue port: how runs that are due reach agents.

- ``database`` (default, local): nothing to send; agents long-poll ``POST /api/work_queues/{name}/get_runs``.
- ``sqs``: one SQS standard queue plus a dead-letter queue per work queue; a run that becomes due (or is due within
  15 minutes, using ``DelaySeconds``) is sent as ``{"flow_run_id": ...}``. Delivery is at-least-once; the claim
  (Scheduled → Pending, accepted once) makes execution exactly-once.

Chosen by ``ORCH_RUN_QUEUE``; AWS endpoints and credentials come from the standard AWS settings
(``AWS_ENDPOINT_URL``, ``AWS_REGION``...), so LocalStack and moto need no special code.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Any, Protocol

from orch.control_plane.settings import ServerSettings

# SQS's largest DelaySeconds: runs due further out are sent later by the dispatcher service.
MAX_DELAY_SECONDS = 900


class RunQueue(Protocol):
    kind: str

    def create_queue(self, name: str) -> tuple[str | None, str | None]:
        """Create the queue (and its DLQ) for a work queue; returns their URLs (None for the database queue)."""
        ...

    def delete_queue(self, queue_url: str | None, dlq_url: str | None) -> None: ...

    def enqueue(self, queue_url: str | None, run_id: uuid.UUID, delay_seconds: int) -> None: ...

    def dead_letters(self, dlq_url: str | None, sample: int = 5) -> tuple[int | None, list[str]]:
        """How many messages wait in the DLQ, and a few of their bodies (without consuming them)."""
        ...


class DatabaseRunQueue:
    """Runs wait in the database; agents poll the API. Nothing to create, send or delete."""

    kind = "database"

    def create_queue(self, name: str) -> tuple[str | None, str | None]:
        return None, None

    def delete_queue(self, queue_url: str | None, dlq_url: str | None) -> None:
        return None

    def enqueue(self, queue_url: str | None, run_id: uuid.UUID, delay_seconds: int) -> None:
        return None

    def dead_letters(self, dlq_url: str | None, sample: int = 5) -> tuple[int | None, list[str]]:
        return None, []


@functools.cache
def _sqs_queue(prefix: str, max_receives: int, visibility: int) -> Any:
    from orch.control_plane.run_queue.sqs import SqsRunQueue

    return SqsRunQueue(prefix=prefix, max_receives=max_receives, visibility_timeout=visibility)


def get_run_queue(settings: ServerSettings) -> RunQueue:
    if settings.run_queue == "sqs":
        queue: RunQueue = _sqs_queue(
            settings.sqs_queue_prefix, settings.sqs_max_receives, settings.sqs_visibility_timeout
        )
        return queue
    return DatabaseRunQueue()


def delay_until(when: dt.datetime | None, now: dt.datetime) -> int | None:
    """DelaySeconds for a run due at ``when``; None when it is too far out to send now."""
    if when is None:
        return 0
    seconds = (when - now).total_seconds()
    if seconds > MAX_DELAY_SECONDS:
        return None
    return max(0, int(seconds))
