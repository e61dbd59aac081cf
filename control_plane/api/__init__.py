"""The HTTP API: a FastAPI app under ``/api``. Routes validate, call ``orch.control_plane.models``, map results."""
