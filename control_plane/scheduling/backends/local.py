"""The local schedule backend: nothing to mirror — the services tick creates every schedule's runs itself.

See :func:`orch.control_plane.services.scheduler.tick` for how runs are created a short horizon ahead.
"""

from __future__ import annotations

import uuid

from orch.control_plane.db import orm
from orch.control_plane.db.engine import Database
from orch.control_plane.scheduling.backends import ReconcileReport


class LocalBackend:
    name = "local"

    def sync(self, db: Database, deployment_id: uuid.UUID) -> None:
        """Nothing to do: the next tick reads the schedules from the database."""

    def reconcile(self, db: Database) -> ReconcileReport:
        return ReconcileReport()

    def runs_locally(self, schedule: orm.DeploymentSchedule) -> bool:
        return True
