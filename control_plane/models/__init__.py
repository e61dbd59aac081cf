"""Queries on a session, one module per resource. Routes call these; they never touch the ORM themselves.

Functions return ORM rows or ``None`` for a missing object (the API maps ``None`` to 404 in one place). State changes
go through ``orch.control_plane.orchestration`` only — ``flow_runs.set_state`` and ``task_runs.record_batch``.
"""
