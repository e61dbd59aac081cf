"""``/api/auth/whoami`` (any key) and ``/api/api_keys`` (admin): who is calling, and the keys themselves.

Creating a key answers with the full key, once; listing and reading show the public key id only. Keys are revoked,
never deleted (``POST /api/api_keys/{id}/revoke``), and a revoked key fails on the next request.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from orch.control_plane.api.deps import get_db
from orch.control_plane.api.security import Scope, requires
from orch.control_plane.db.engine import Database
from orch.control_plane.models import api_keys as model
from orch.control_plane.schemas.api_keys import ApiKey, ApiKeyCreate, ApiKeyCreated, WhoAmI
from orch.exceptions import ObjectNotFound

router = APIRouter()


@router.get("/auth/whoami", tags=["auth"], dependencies=[requires(Scope.READ)])
async def whoami(request: Request) -> WhoAmI:
    """The caller's key and scope. A presented key is checked even where authentication is off."""
    authenticator = getattr(request.app.state, "authenticate", None)
    embedded = getattr(request.app.state, "embedded", False)
    if authenticator is None or embedded:
        return WhoAmI(auth_enabled=False, scope=Scope.ADMIN)
    enabled = await authenticator.enabled()
    identity = await authenticator.identify_if_present(request)
    if identity is None:
        return WhoAmI(auth_enabled=enabled, scope=Scope.ADMIN)
    key = await run_in_threadpool(_read_key, request.app.state.database, identity.id)
    return WhoAmI(auth_enabled=enabled, scope=identity.scope if enabled else Scope.ADMIN, key=key)


def _read_key(db: Database, key_id: uuid.UUID) -> ApiKey | None:
    with db.session(write=False) as session:
        row = model.read(session, key_id)
        return ApiKey.model_validate(row) if row is not None else None


@router.post("/api_keys/", status_code=201, tags=["api keys"], dependencies=[requires(Scope.ADMIN)])
def create_api_key(
    data: ApiKeyCreate, request: Request, response: Response, db: Database = Depends(get_db)
) -> ApiKeyCreated:
    """Create a key; the answer is the only place its secret ever appears (and no cache may keep it)."""
    response.headers["Cache-Control"] = "no-store"
    with db.session() as session:
        row, key = model.create(session, name=data.name, scope=data.scope.value, expires_at=data.expires_at)
        created = ApiKeyCreated.model_validate({**ApiKey.model_validate(row).model_dump(), "key": key.full})
    authenticator = getattr(request.app.state, "authenticate", None)
    if authenticator is not None:
        authenticator.note_key_created()
    return created


@router.get("/api_keys/", tags=["api keys"], dependencies=[requires(Scope.ADMIN)])
def list_api_keys(include_inactive: bool = False, db: Database = Depends(get_db)) -> list[ApiKey]:
    """Working keys, oldest first; ``include_inactive`` adds revoked and expired ones."""
    with db.session(write=False) as session:
        return [ApiKey.model_validate(r) for r in model.list_(session, include_inactive=include_inactive)]


@router.get("/api_keys/{id}", tags=["api keys"], dependencies=[requires(Scope.ADMIN)])
def read_api_key(id: uuid.UUID, db: Database = Depends(get_db)) -> ApiKey:
    with db.session(write=False) as session:
        row = model.read(session, id)
        if row is None:
            raise ObjectNotFound(f"API key {id} not found.")
        return ApiKey.model_validate(row)


@router.post("/api_keys/{id}/revoke", tags=["api keys"], dependencies=[requires(Scope.ADMIN)])
def revoke_api_key(id: uuid.UUID, db: Database = Depends(get_db)) -> ApiKey:
    """Revoke a key: it fails from the next request on. Idempotent."""
    with db.session() as session:
        row = model.revoke(session, id)
        if row is None:
            raise ObjectNotFound(f"API key {id} not found.")
        return ApiKey.model_validate(row)
