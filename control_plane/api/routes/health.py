"""Liveness and version: the only routes that need no API key."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends

from orch.control_plane.api.deps import get_db
from orch.control_plane.api.security import PUBLIC, requires
from orch.control_plane.db.engine import Database

router = APIRouter(tags=["health"])


@router.get("/health", dependencies=[requires(PUBLIC)])
def health(db: Database = Depends(get_db)) -> dict[str, Any]:
    with db.session(write=False) as session:
        session.execute(sa.text("SELECT 1"))
    from orch import __version__

    return {"status": "ok", "version": __version__, "database": db.dialect}


@router.get("/version", dependencies=[requires(PUBLIC)])
def version() -> dict[str, str]:
    from orch import __version__

    return {"version": __version__}
