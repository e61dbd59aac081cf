"""Persistence: SQLAlchemy 2 models, engines and sessions, Alembic migrations.

Only ``orch.control_plane`` imports this package; the SDK and agents reach the data through the HTTP API.
"""
