"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 17:56:46.557053
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import orch.control_plane.db.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "agents",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "work_queues", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("infra_type", sa.String(length=20), nullable=True),
        sa.Column("hostname", sa.String(length=500), nullable=True),
        sa.Column("last_seen", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("name", name=op.f("uq_agents__name")),
    )
    op.create_table(
        "api_keys",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("prefix", sa.String(length=40), nullable=False),
        sa.Column("key_hash", sa.String(length=200), nullable=False),
        sa.Column("hash_scheme", sa.String(length=40), nullable=False),
        sa.Column("expires_at", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("revoked_at", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("last_used_at", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys__prefix")),
    )
    op.create_table(
        "flows",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "tags", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flows")),
        sa.UniqueConstraint("name", name=op.f("uq_flows__name")),
    )
    op.create_table(
        "work_queues",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("last_polled", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("sqs_queue_url", sa.String(length=1000), nullable=True),
        sa.Column("sqs_dlq_url", sa.String(length=1000), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_queues")),
        sa.UniqueConstraint("name", name=op.f("uq_work_queues__name")),
    )
    op.create_table(
        "deployments",
        sa.Column("flow_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version", sa.String(length=200), nullable=True),
        sa.Column(
            "tags", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("entrypoint", sa.String(length=1000), nullable=True),
        sa.Column("path", sa.String(length=1000), nullable=True),
        sa.Column(
            "code_bundle", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column(
            "parameters", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "parameter_schema",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("enforce_parameter_schema", sa.Boolean(), nullable=False),
        sa.Column("work_queue_name", sa.String(length=200), nullable=True),
        sa.Column("infra_type", sa.String(length=20), nullable=False),
        sa.Column(
            "infra_overrides",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("max_lateness", sa.Double(), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=True),
        sa.Column("retry_delay", sa.Double(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flows.id"], name=op.f("fk_deployments__flow_id__flows"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint("flow_id", "name", name=op.f("uq_deployments__flow_id_name")),
    )
    op.create_table(
        "deployment_schedules",
        sa.Column("deployment_id", sa.Uuid(), nullable=False),
        sa.Column(
            "schedule", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("materialized_until", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("backend_ref", sa.String(length=500), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_deployment_schedules__deployment_id__deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_schedules")),
    )
    with op.batch_alter_table("deployment_schedules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deployment_schedules__deployment_id"), ["deployment_id"], unique=False)

    op.create_table(
        "flow_runs",
        sa.Column("flow_id", sa.Uuid(), nullable=False),
        sa.Column("deployment_id", sa.Uuid(), nullable=True),
        sa.Column("work_queue_name", sa.String(length=200), nullable=True),
        sa.Column("parent_task_run_id", sa.Uuid(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=500), nullable=True),
        sa.Column(
            "parameters", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "empirical_policy",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("heartbeat_time", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("infrastructure_pid", sa.String(length=500), nullable=True),
        sa.Column("dispatched_for", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "tags", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("state_type", sa.String(length=20), nullable=True),
        sa.Column("state_name", sa.String(length=100), nullable=True),
        sa.Column("state_timestamp", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("state_message", sa.Text(), nullable=True),
        sa.Column(
            "state_details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "state_data", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("state_version", sa.Integer(), nullable=False),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("expected_start_time", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("start_time", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("end_time", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("total_run_time", sa.Double(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_flow_runs__deployment_id__deployments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flows.id"], name=op.f("fk_flow_runs__flow_id__flows"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_runs")),
        sa.UniqueConstraint("flow_id", "idempotency_key", name=op.f("uq_flow_runs__flow_id_idempotency_key")),
    )
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.create_index("ix_flow_runs__created_id", ["created", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_runs__deployment_id"), ["deployment_id"], unique=False)
        batch_op.create_index("ix_flow_runs__expected_start_time_id", ["expected_start_time", "id"], unique=False)
        batch_op.create_index(
            "ix_flow_runs__flow_id_expected_start_time", ["flow_id", "expected_start_time"], unique=False
        )
        batch_op.create_index("ix_flow_runs__name_id", ["name", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_runs__parent_task_run_id"), ["parent_task_run_id"], unique=False)
        batch_op.create_index(
            "ix_flow_runs__state_type_expected_start_time", ["state_type", "expected_start_time"], unique=False
        )
        batch_op.create_index("ix_flow_runs__state_type_heartbeat_time", ["state_type", "heartbeat_time"], unique=False)
        batch_op.create_index("ix_flow_runs__updated_id", ["updated", "id"], unique=False)
        batch_op.create_index(
            "ix_flow_runs__work_queue_state_time",
            ["work_queue_name", "state_type", "expected_start_time"],
            unique=False,
        )

    op.create_table(
        "flow_run_states",
        sa.Column("flow_run_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("timestamp", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column(
            "state_details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("data", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_run_id"],
            ["flow_runs.id"],
            name=op.f("fk_flow_run_states__flow_run_id__flow_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_run_states")),
    )
    with op.batch_alter_table("flow_run_states", schema=None) as batch_op:
        batch_op.create_index("ix_flow_run_states__flow_run_id_timestamp", ["flow_run_id", "timestamp"], unique=False)

    op.create_table(
        "logs",
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("task_run_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("timestamp", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_run_id"], ["flow_runs.id"], name=op.f("fk_logs__flow_run_id__flow_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logs")),
    )
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_logs__flow_run_id_level_timestamp_id", ["flow_run_id", "level", "timestamp", "id"], unique=False
        )
        batch_op.create_index("ix_logs__flow_run_id_timestamp_id", ["flow_run_id", "timestamp", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_logs__task_run_id"), ["task_run_id"], unique=False)

    op.create_table(
        "task_runs",
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("task_key", sa.String(length=500), nullable=False),
        sa.Column("dynamic_key", sa.String(length=200), nullable=False),
        sa.Column("cache_key", sa.String(length=2000), nullable=True),
        sa.Column("cache_expiration", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column(
            "task_inputs", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "state_history",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default=sa.text("'[]'"),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "tags", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("state_type", sa.String(length=20), nullable=True),
        sa.Column("state_name", sa.String(length=100), nullable=True),
        sa.Column("state_timestamp", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("state_message", sa.Text(), nullable=True),
        sa.Column(
            "state_details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "state_data", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("state_version", sa.Integer(), nullable=False),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("expected_start_time", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("start_time", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("end_time", orch.control_plane.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("total_run_time", sa.Double(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", orch.control_plane.db.types.Timestamp(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_run_id"], ["flow_runs.id"], name=op.f("fk_task_runs__flow_run_id__flow_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_runs")),
    )
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_task_runs__flow_run_id_expected_start_time", ["flow_run_id", "expected_start_time"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_task_runs__flow_run_id_expected_start_time")

    op.drop_table("task_runs")
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logs__task_run_id"))
        batch_op.drop_index("ix_logs__flow_run_id_timestamp_id")
        batch_op.drop_index("ix_logs__flow_run_id_level_timestamp_id")

    op.drop_table("logs")
    with op.batch_alter_table("flow_run_states", schema=None) as batch_op:
        batch_op.drop_index("ix_flow_run_states__flow_run_id_timestamp")

    op.drop_table("flow_run_states")
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_flow_runs__work_queue_state_time")
        batch_op.drop_index("ix_flow_runs__updated_id")
        batch_op.drop_index("ix_flow_runs__state_type_heartbeat_time")
        batch_op.drop_index("ix_flow_runs__state_type_expected_start_time")
        batch_op.drop_index(batch_op.f("ix_flow_runs__parent_task_run_id"))
        batch_op.drop_index("ix_flow_runs__name_id")
        batch_op.drop_index("ix_flow_runs__flow_id_expected_start_time")
        batch_op.drop_index("ix_flow_runs__expected_start_time_id")
        batch_op.drop_index(batch_op.f("ix_flow_runs__deployment_id"))
        batch_op.drop_index("ix_flow_runs__created_id")

    op.drop_table("flow_runs")
    with op.batch_alter_table("deployment_schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployment_schedules__deployment_id"))

    op.drop_table("deployment_schedules")
    op.drop_table("deployments")
    op.drop_table("work_queues")
    op.drop_table("flows")
    op.drop_table("api_keys")
    op.drop_table("agents")
