"""The EventBridge Scheduler backend: one AWS schedule per deployment schedule, invoking the schedule Lambda.

Each deployment schedule that :func:`orch.control_plane.scheduling.eventbridge.to_eventbridge` can express becomes
a schedule named :func:`~orch.control_plane.scheduling.eventbridge.schedule_name` in the group
``ORCH_SCHEDULER_GROUP_NAME``, with the deployment schedule's time zone as ``ScheduleExpressionTimezone``,
``FlexibleTimeWindow`` OFF, and a target that invokes ``ORCH_SCHEDULER_TARGET_ARN`` (assuming
``ORCH_SCHEDULER_ROLE_ARN``) with the input::

    {"deployment_id": "...", "schedule_id": "...", "scheduled_time": "<aws.scheduler.scheduled-time>"}

EventBridge replaces the placeholder with the time the invocation was scheduled for, so a retried delivery carries
the same time and :func:`~orch.control_plane.models.deployments.create_scheduled_run` makes it a no-op. A paused
deployment or an inactive schedule keeps its AWS schedule with ``State=DISABLED``. Schedules that cannot be
expressed exactly (most rrules, unanchored odd intervals...) get ``backend_ref = "local"`` and the services tick
creates their runs.

The schedule's identity lives in its name, so the database is the truth and AWS a mirror: :meth:`sync` makes the
mirror of one deployment right after each API change; :meth:`reconcile` lists the whole group and repairs
differences (orphans from a failed delete, schedules missing after a failed create, wrong states), and runs on
every services tick. boto3 is imported on first use and honours ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import uuid
from typing import Any

import sqlalchemy as sa

from orch.control_plane.db import orm
from orch.control_plane.db.engine import Database
from orch.control_plane.models import deployments as deployments_model
from orch.control_plane.scheduling.backends import LOCAL_REF, ReconcileReport, ScheduleBackendError
from orch.control_plane.scheduling.eventbridge import EventBridgeExpression, schedule_name, to_eventbridge

logger = logging.getLogger("orch.control_plane.scheduling")

SCHEDULED_TIME_PLACEHOLDER = "<aws.scheduler.scheduled-time>"


@dataclasses.dataclass(frozen=True)
class _Wanted:
    """One AWS schedule as the database says it should be."""

    name: str
    deployment_id: uuid.UUID
    schedule_id: uuid.UUID
    expression: EventBridgeExpression
    state: str  # ENABLED | DISABLED


class EventBridgeBackend:
    name = "eventbridge"

    def __init__(
        self, *, group_name: str, prefix: str, role_arn: str | None, target_arn: str | None, client: Any = None
    ) -> None:
        self.group_name = group_name
        self.prefix = prefix
        self.role_arn = role_arn
        self.target_arn = target_arn
        self._client = client
        self._group_checked = False
        self._lock = threading.Lock()

    # -- the port --------------------------------------------------------------------------------------------------

    def runs_locally(self, schedule: orm.DeploymentSchedule) -> bool:
        # Not yet mirrored (None) counts as local too: a run created twice is a no-op, a run never created is not.
        return schedule.backend_ref is None or schedule.backend_ref == LOCAL_REF

    # AWS is listed *before* the database is read, in both methods. A change is committed to the database before it
    # is mirrored, so whatever the listing shows, the database read after it knows of: a schedule another request
    # mirrors concurrently is never taken for an orphan and deleted. (The reverse order lost a fresh schedule when
    # the services tick's reconcile ran during a deploy.) A write racing the other way is repaired by the next tick.

    def sync(self, db: Database, deployment_id: uuid.UUID) -> None:
        existing = self._existing(self._deployment_prefix(deployment_id))
        with db.session(write=False) as session:
            wanted, local = self._wanted(session, deployment_id)
            known_ids = self._schedule_ids(session)
        self._apply(wanted, existing, known_ids, set(local), refresh=True)
        self._record_refs(db, wanted, local)

    def reconcile(self, db: Database) -> ReconcileReport:
        existing = self._existing(f"{self.prefix}-")
        with db.session(write=False) as session:
            wanted, local = self._wanted(session, None)
            known_ids = self._schedule_ids(session)
        report = self._apply(wanted, existing, known_ids, set(local), refresh=False)
        report.local = len(local)
        self._record_refs(db, wanted, local)
        return report

    # -- what the database wants -----------------------------------------------------------------------------------

    def _wanted(self, session: Any, deployment_id: uuid.UUID | None) -> tuple[dict[str, _Wanted], list[uuid.UUID]]:
        query = sa.select(orm.DeploymentSchedule, orm.Deployment.paused).join(
            orm.Deployment, orm.Deployment.id == orm.DeploymentSchedule.deployment_id
        )
        if deployment_id is not None:
            query = query.where(orm.DeploymentSchedule.deployment_id == deployment_id)
        wanted: dict[str, _Wanted] = {}
        local: list[uuid.UUID] = []
        for schedule, paused in session.execute(query):
            expression = to_eventbridge(deployments_model.spec_of(schedule))
            if expression is None:
                local.append(schedule.id)
                continue
            name = schedule_name(schedule.deployment_id, schedule.id, prefix=self.prefix)
            state = "ENABLED" if schedule.active and not paused else "DISABLED"
            wanted[name] = _Wanted(name, schedule.deployment_id, schedule.id, expression, state)
        return wanted, local

    @staticmethod
    def _schedule_ids(session: Any) -> set[uuid.UUID]:
        return set(session.scalars(sa.select(orm.DeploymentSchedule.id)))

    def _deployment_prefix(self, deployment_id: uuid.UUID) -> str:
        return f"{self.prefix}-{deployment_id.hex[:8]}-"

    def _schedule_id_of(self, name: str) -> uuid.UUID | None:
        try:
            return uuid.UUID(name.rsplit("-", 1)[-1])
        except ValueError:
            return None

    @staticmethod
    def _record_refs(db: Database, wanted: dict[str, _Wanted], local: list[uuid.UUID]) -> None:
        refs = {w.schedule_id: w.name for w in wanted.values()} | {sid: LOCAL_REF for sid in local}
        if not refs:
            return
        with db.session() as session:
            for schedule_id, ref in refs.items():
                session.execute(
                    sa.update(orm.DeploymentSchedule)
                    .where(
                        orm.DeploymentSchedule.id == schedule_id,
                        orm.DeploymentSchedule.backend_ref.is_distinct_from(ref),
                    )
                    .values(backend_ref=ref),
                    execution_options={"synchronize_session": False},
                )

    # -- AWS ---------------------------------------------------------------------------------------------------------

    def _scheduler(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3

                self._client = boto3.client("scheduler")
            return self._client

    def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._scheduler(), operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Error")
            message = exc.response.get("Error", {}).get("Message", "")
            raise _AwsError(code, f"EventBridge Scheduler {operation} failed: {code}: {message}") from None
        except BotoCoreError as exc:
            raise ScheduleBackendError(f"EventBridge Scheduler {operation} failed: {exc}") from None

    def _ensure_group(self) -> None:
        if self._group_checked:
            return
        try:
            self._call("get_schedule_group", Name=self.group_name)
        except _AwsError as exc:
            if exc.code != "ResourceNotFoundException":
                raise
            try:
                self._call("create_schedule_group", Name=self.group_name)
            except _AwsError as again:
                if again.code != "ConflictException":  # created by someone else meanwhile
                    raise
        self._group_checked = True

    def _existing(self, name_prefix: str) -> dict[str, str]:
        """Name -> State of the group's schedules whose names start with ``name_prefix``."""
        self._ensure_group()
        found: dict[str, str] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"GroupName": self.group_name, "NamePrefix": name_prefix, "MaxResults": 100}
            if token:
                kwargs["NextToken"] = token
            page = self._call("list_schedules", **kwargs)
            for item in page.get("Schedules", []):
                # Filter again: the prefix filter is a server feature that emulators do not all honour.
                if item["Name"].startswith(name_prefix):
                    found[item["Name"]] = item.get("State", "ENABLED")
            token = page.get("NextToken")
            if not token:
                return found

    def _apply(
        self,
        wanted: dict[str, _Wanted],
        existing: dict[str, str],
        known_ids: set[uuid.UUID],
        local_ids: set[uuid.UUID],
        *,
        refresh: bool,
    ) -> ReconcileReport:
        """Create what is missing, update what differs (everything with ``refresh``: the expression may have
        changed, and listing does not show it), delete the mirrors of schedules that are gone or now local."""
        report = ReconcileReport()
        for name, item in wanted.items():
            if name not in existing:
                self._put(item, create=True)
                report.created += 1
            elif refresh or existing[name] != item.state:
                self._put(item, create=False)
                report.updated += 1
        for name in existing:
            if name in wanted:
                continue
            schedule_id = self._schedule_id_of(name)
            # A schedule id still in the database and not left to the services tick belongs to another deployment
            # whose id starts with the same 8 hex digits: keep it. Names we cannot read are not ours: keep them.
            if schedule_id is None or (schedule_id in known_ids and schedule_id not in local_ids):
                continue
            self._delete(name)
            report.deleted += 1
        return report

    def _put(self, item: _Wanted, *, create: bool) -> None:
        if not self.target_arn or not self.role_arn:
            raise ScheduleBackendError(
                "ORCH_SCHEDULER_TARGET_ARN and ORCH_SCHEDULER_ROLE_ARN must be set to use EventBridge Scheduler."
            )
        payload = {
            "deployment_id": str(item.deployment_id),
            "schedule_id": str(item.schedule_id),
            "scheduled_time": SCHEDULED_TIME_PLACEHOLDER,
        }
        params: dict[str, Any] = {
            "Name": item.name,
            "GroupName": self.group_name,
            "ScheduleExpression": item.expression.expression,
            "ScheduleExpressionTimezone": item.expression.timezone,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": item.state,
            "Description": f"orch deployment {item.deployment_id} schedule {item.schedule_id}",
            "Target": {"Arn": self.target_arn, "RoleArn": self.role_arn, "Input": json.dumps(payload)},
        }
        if item.expression.start_date is not None:
            params["StartDate"] = item.expression.start_date.astimezone(dt.UTC)
        if create:
            try:
                self._call("create_schedule", **params)
                return
            except _AwsError as exc:
                if exc.code != "ConflictException":
                    raise
        self._call("update_schedule", **params)
        logger.info("EventBridge schedule %s is %s (%s)", item.name, item.state, item.expression.expression)

    def _delete(self, name: str) -> None:
        try:
            self._call("delete_schedule", Name=name, GroupName=self.group_name)
        except _AwsError as exc:
            if exc.code != "ResourceNotFoundException":
                raise
        logger.info("EventBridge schedule %s deleted", name)


class _AwsError(ScheduleBackendError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
