"""orch's control plane: the API, the orchestration rules, the database and the background services.

Runs as ``orch server start`` (uvicorn, SQLite or PostgreSQL), in-process for the SDK's embedded mode, or on AWS
Lambda. Importing this package is cheap; subpackages load what they need.
"""
