"""The relational model (SQLAlchemy 2, typed ``Mapped[]``).

Alembic migrations in ``migrations/versions`` are the only way this schema is created; a test checks that the
migrated schema and these classes agree. Every table is UUID-keyed with ``created``/``updated``. Runs keep their
current state denormalised on the row (``state_type``, ``state_name``, ``state_version``...) so lists and claims need
no join. A flow run's full history lives in ``flow_run_states``; a task run's short history is kept on its own row
(``task_runs.state_history``), so recording a task run is one row, not one per state. ``state_version`` is the
optimistic-concurrency token: every accepted transition bumps it with ``UPDATE ... WHERE state_version = :seen``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from orch.control_plane.db.types import JSONType, Timestamp
from orch.control_plane.schemas.base import now_utc

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s__%(column_0_N_name)s",
    "uq": "uq_%(table_name)s__%(column_0_N_name)s",
    "ck": "ck_%(table_name)s__%(constraint_name)s",
    "fk": "fk_%(table_name)s__%(column_0_name)s__%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dt.datetime: Timestamp(),
        dict[str, Any]: JSONType,
        list[str]: JSONType,
        Any: JSONType,
    }

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    created: Mapped[dt.datetime] = mapped_column(default=now_utc)
    updated: Mapped[dt.datetime] = mapped_column(default=now_utc, onupdate=now_utc)


class Flow(Base):
    __tablename__ = "flows"
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    tags: Mapped[list[str]] = mapped_column(default=list)


# A run's current state, denormalised on its row (flow runs and task runs alike), and the bookkeeping every accepted
# transition maintains: what orchestration reads and writes besides the history.
STATE_COLUMNS = ("state_type", "state_name", "state_timestamp", "state_message", "state_details", "state_data")
RUN_BOOKKEEPING_COLUMNS = (
    "state_version",
    "run_count",
    "start_time",
    "end_time",
    "total_run_time",
    "expected_start_time",
)


class _RunMixin:
    """Columns shared by flow runs and task runs."""

    name: Mapped[str] = mapped_column(sa.String(200))
    tags: Mapped[list[str]] = mapped_column(default=list)
    state_type: Mapped[str | None] = mapped_column(sa.String(20))
    state_name: Mapped[str | None] = mapped_column(sa.String(100))
    state_timestamp: Mapped[dt.datetime | None]
    state_message: Mapped[str | None] = mapped_column(sa.Text)
    state_details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state_data: Mapped[Any | None]
    state_version: Mapped[int] = mapped_column(default=0)
    run_count: Mapped[int] = mapped_column(default=0)
    expected_start_time: Mapped[dt.datetime | None]
    start_time: Mapped[dt.datetime | None]
    end_time: Mapped[dt.datetime | None]
    total_run_time: Mapped[float] = mapped_column(default=0.0)


class FlowRun(_RunMixin, Base):
    __tablename__ = "flow_runs"
    flow_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("flows.id", ondelete="CASCADE"))
    deployment_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("deployments.id", ondelete="SET NULL"), index=True
    )
    work_queue_name: Mapped[str | None] = mapped_column(sa.String(200))
    parent_task_run_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(500))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    empirical_policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    heartbeat_time: Mapped[dt.datetime | None]
    infrastructure_pid: Mapped[str | None] = mapped_column(sa.String(500))
    # The scheduled time this run was last sent to its work queue's SQS queue for (the dispatcher resends when a
    # retry reschedules the run). Unused with the database run queue.
    dispatched_for: Mapped[dt.datetime | None]

    __table_args__ = (
        sa.UniqueConstraint("flow_id", "idempotency_key"),
        sa.Index("ix_flow_runs__expected_start_time_id", "expected_start_time", "id"),
        sa.Index("ix_flow_runs__flow_id_expected_start_time", "flow_id", "expected_start_time"),
        sa.Index("ix_flow_runs__state_type_expected_start_time", "state_type", "expected_start_time"),
        sa.Index("ix_flow_runs__work_queue_state_time", "work_queue_name", "state_type", "expected_start_time"),
        sa.Index("ix_flow_runs__created_id", "created", "id"),
        sa.Index("ix_flow_runs__updated_id", "updated", "id"),
        sa.Index("ix_flow_runs__name_id", "name", "id"),
        sa.Index("ix_flow_runs__state_type_heartbeat_time", "state_type", "heartbeat_time"),
    )


class FlowRunState(Base):
    __tablename__ = "flow_run_states"
    flow_run_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("flow_runs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(sa.String(20))
    name: Mapped[str] = mapped_column(sa.String(100))
    timestamp: Mapped[dt.datetime]
    message: Mapped[str | None] = mapped_column(sa.Text)
    state_details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    data: Mapped[Any | None]

    __table_args__ = (sa.Index("ix_flow_run_states__flow_run_id_timestamp", "flow_run_id", "timestamp"),)


class TaskRun(_RunMixin, Base):
    __tablename__ = "task_runs"
    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("flow_runs.id", ondelete="CASCADE"))
    task_key: Mapped[str] = mapped_column(sa.String(500))
    dynamic_key: Mapped[str] = mapped_column(sa.String(200), default="0")
    cache_key: Mapped[str | None] = mapped_column(sa.String(2000))
    cache_expiration: Mapped[dt.datetime | None]
    task_inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Every accepted state, oldest first, as compact JSON objects: ``type``, ``name``, ``timestamp`` (ISO 8601) and
    # ``message``/``state_details``/``data`` when set. A task run has a handful of states and they are only read
    # together (``GET /api/task_runs/{id}/states``), so they live on the run's row: recording a task run writes one
    # row instead of one per state. Deferred: lists of task runs do not load it. The server default lets rows be
    # written without it (bulk loads, other tools).
    state_history: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONType, default=list, server_default=sa.text("'[]'"), deferred=True
    )

    __table_args__ = (sa.Index("ix_task_runs__flow_run_id_expected_start_time", "flow_run_id", "expected_start_time"),)


class Deployment(Base):
    __tablename__ = "deployments"
    flow_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("flows.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.Text)
    version: Mapped[str | None] = mapped_column(sa.String(200))
    tags: Mapped[list[str]] = mapped_column(default=list)
    entrypoint: Mapped[str | None] = mapped_column(sa.String(1000))
    path: Mapped[str | None] = mapped_column(sa.String(1000))
    # {"sha256": "...", "storage": "file:///...|s3://bucket/prefix", "key": "..."}
    code_bundle: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    parameter_schema: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enforce_parameter_schema: Mapped[bool] = mapped_column(default=True)
    work_queue_name: Mapped[str | None] = mapped_column(sa.String(200))
    infra_type: Mapped[str] = mapped_column(sa.String(20), default="process")
    infra_overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    paused: Mapped[bool] = mapped_column(default=False)
    max_lateness: Mapped[float | None]
    retries: Mapped[int | None]
    retry_delay: Mapped[float | None]

    __table_args__ = (sa.UniqueConstraint("flow_id", "name"),)


class DeploymentSchedule(Base):
    __tablename__ = "deployment_schedules"
    deployment_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    # {"cron": "...", "timezone": "..."} | {"interval": seconds, "anchor_date": ..., "timezone": ...} | {"rrule": ...}
    schedule: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active: Mapped[bool] = mapped_column(default=True)
    # How far ahead the local scheduler has created runs for this schedule.
    materialized_until: Mapped[dt.datetime | None]
    # The name of the EventBridge Scheduler schedule that mirrors this one, when the AWS backend is used.
    backend_ref: Mapped[str | None] = mapped_column(sa.String(500))


class WorkQueue(Base):
    __tablename__ = "work_queues"
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    description: Mapped[str | None] = mapped_column(sa.Text)
    priority: Mapped[int] = mapped_column(default=100)
    concurrency_limit: Mapped[int | None]
    paused: Mapped[bool] = mapped_column(default=False)
    last_polled: Mapped[dt.datetime | None]
    sqs_queue_url: Mapped[str | None] = mapped_column(sa.String(1000))
    sqs_dlq_url: Mapped[str | None] = mapped_column(sa.String(1000))


class Agent(Base):
    __tablename__ = "agents"
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    work_queues: Mapped[list[str]] = mapped_column(default=list)
    infra_type: Mapped[str | None] = mapped_column(sa.String(20))
    hostname: Mapped[str | None] = mapped_column(sa.String(500))
    last_seen: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(sa.String(20), default="ONLINE")


class Log(Base):
    __tablename__ = "logs"
    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("flow_runs.id", ondelete="CASCADE"))
    task_run_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    level: Mapped[int]
    message: Mapped[str] = mapped_column(sa.Text)
    timestamp: Mapped[dt.datetime]

    __table_args__ = (
        sa.Index("ix_logs__flow_run_id_timestamp_id", "flow_run_id", "timestamp", "id"),
        # The run page's level filter (errors only) on runs with millions of lines.
        sa.Index("ix_logs__flow_run_id_level_timestamp_id", "flow_run_id", "level", "timestamp", "id"),
    )


class ApiKey(Base):
    __tablename__ = "api_keys"
    name: Mapped[str] = mapped_column(sa.String(200))
    scope: Mapped[str] = mapped_column(sa.String(20))
    # Public, recognisable part of the key (shown in listings); the secret part is only ever stored hashed.
    prefix: Mapped[str] = mapped_column(sa.String(40), unique=True)
    key_hash: Mapped[str] = mapped_column(sa.String(200))
    hash_scheme: Mapped[str] = mapped_column(sa.String(40))
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]
