"""Dependencies shared by routes."""

from __future__ import annotations

from fastapi import Request

from orch.control_plane.db.engine import Database


async def get_db(request: Request) -> Database:
    # async: a plain attribute read must not cost a thread-pool hop on every request.
    db: Database = request.app.state.database
    return db
