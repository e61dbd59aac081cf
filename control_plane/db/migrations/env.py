"""Alembic environment: runs against the engine handed over by ``orch.control_plane.db.migrate``."""

from __future__ import annotations

from alembic import context

from orch.control_plane.db.orm import Base

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
