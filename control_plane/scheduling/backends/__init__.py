"""The ``ScheduleBackend`` port: who turns a deployment's schedules into runs.

Two adapters, chosen by ``ORCH_SCHEDULE_BACKEND``:

* ``local`` (:mod:`.local`) — the services tick (:mod:`orch.control_plane.services.scheduler`) computes run times
  with :mod:`orch.control_plane.scheduling.timetable` and creates the runs itself, a short horizon ahead;
* ``eventbridge`` (:mod:`.eventbridge`) — one EventBridge Scheduler schedule per deployment schedule invokes the
  control plane's schedule Lambda at each time; schedules EventBridge cannot express exactly stay with the services
  tick (which runs every minute on AWS). ``backend_ref`` on each deployment schedule records which.

Both end in one function, :func:`orch.control_plane.models.deployments.create_scheduled_run`, which creates the run
for (deployment, scheduled time) at most once. The API calls :meth:`ScheduleBackend.sync` after every change to a
deployment or its schedules (database first, then the backend); :meth:`ScheduleBackend.reconcile` repairs whatever
a failed sync left behind and is called by the services tick.

Errors::

    OrchError
    └── ScheduleBackendError   the backend (AWS) refused or could not be reached; the database change stands
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from typing import TYPE_CHECKING, Protocol

from orch.exceptions import OrchError

if TYPE_CHECKING:
    from orch.control_plane.db import orm
    from orch.control_plane.db.engine import Database
    from orch.control_plane.settings import ServerSettings

__all__ = ["LOCAL_REF", "ReconcileReport", "ScheduleBackend", "ScheduleBackendError", "get_backend", "reset_backends"]

# backend_ref of a schedule the services tick materializes (on the local backend, or as the EventBridge fallback).
LOCAL_REF = "local"


class ScheduleBackendError(OrchError):
    """The schedule backend failed; the database change was made and ``reconcile()`` will repair the mirror."""


@dataclasses.dataclass
class ReconcileReport:
    """What a reconcile did: schedules created or updated, orphans deleted, schedules left to the services tick."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    local: int = 0


class ScheduleBackend(Protocol):
    name: str

    def sync(self, db: Database, deployment_id: uuid.UUID) -> None:
        """Make the backend match the deployment's schedules in the database (the deployment may be deleted)."""

    def reconcile(self, db: Database) -> ReconcileReport:
        """Compare everything the backend holds with the database; create what is missing, delete orphans."""

    def runs_locally(self, schedule: orm.DeploymentSchedule) -> bool:
        """Whether the services tick creates this schedule's runs."""


_lock = threading.Lock()
_backends: dict[tuple[str | None, ...], ScheduleBackend] = {}


def get_backend(settings: ServerSettings) -> ScheduleBackend:
    """The backend ``settings`` choose (one per configuration, so the boto3 client is created once)."""
    key = (
        settings.schedule_backend,
        settings.scheduler_group_name,
        settings.scheduler_name_prefix,
        settings.scheduler_role_arn,
        settings.scheduler_target_arn,
    )
    with _lock:
        backend = _backends.get(key)
        if backend is None:
            if settings.schedule_backend == "eventbridge":
                from orch.control_plane.scheduling.backends.eventbridge import EventBridgeBackend

                backend = EventBridgeBackend(
                    group_name=settings.scheduler_group_name,
                    prefix=settings.scheduler_name_prefix,
                    role_arn=settings.scheduler_role_arn,
                    target_arn=settings.scheduler_target_arn,
                )
            else:
                from orch.control_plane.scheduling.backends.local import LocalBackend

                backend = LocalBackend()
            _backends[key] = backend
        return backend


def reset_backends() -> None:
    """Forget the cached backends (tests change the environment)."""
    with _lock:
        _backends.clear()
