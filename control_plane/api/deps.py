"""Dependencies shared by routes."""

from __future__ import annotations

from fastapi import Request

from orch.control_plane.db.engine import Database


def get_db(request: Request) -> Database:
    db: Database = request.app.state.database
    return db
