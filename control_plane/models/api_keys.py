"""API keys: create (returning the only copy of the secret), read by id or public prefix, list, revoke, touch.

Keys are never deleted, only revoked: the row stays as the record of who had access, and a revoked key's id can
never be reused. Rows hold the public prefix and a hash (``orch.control_plane.auth.keys``), never the secret.
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orch.control_plane.auth.keys import HASH_SCHEME, ParsedKey, generate_key, hash_key
from orch.control_plane.db import orm
from orch.control_plane.schemas.base import now_utc

_ID_ATTEMPTS = 5


def create(
    session: Session,
    *,
    name: str,
    scope: str,
    expires_at: dt.datetime | None = None,
    key: ParsedKey | None = None,
) -> tuple[orm.ApiKey, ParsedKey]:
    """Store a new key (a random one unless ``key`` is given) and return the row and the key."""
    for _attempt in range(_ID_ATTEMPTS):
        new_key = key or generate_key()
        try:
            with session.begin_nested():
                row = orm.ApiKey(
                    name=name,
                    scope=scope,
                    prefix=new_key.prefix,
                    key_hash=hash_key(new_key),
                    hash_scheme=HASH_SCHEME,
                    expires_at=expires_at,
                )
                session.add(row)
                session.flush()
            return row, new_key
        except IntegrityError:
            # A 48-bit key id collided (or a fixed id exists already): draw another unless it was fixed.
            if key is not None:
                raise
    raise RuntimeError("could not draw an unused API key id")


def read(session: Session, key_id: uuid.UUID) -> orm.ApiKey | None:
    return session.get(orm.ApiKey, key_id)


def read_by_prefix(session: Session, prefix: str) -> orm.ApiKey | None:
    """The row for a public key id: one lookup on the unique index, never a scan."""
    return session.scalars(sa.select(orm.ApiKey).where(orm.ApiKey.prefix == prefix)).first()


def list_(session: Session, *, include_inactive: bool = False) -> list[orm.ApiKey]:
    query = sa.select(orm.ApiKey).order_by(orm.ApiKey.created, orm.ApiKey.id)
    if not include_inactive:
        query = query.where(orm.ApiKey.revoked_at.is_(None)).where(
            sa.or_(orm.ApiKey.expires_at.is_(None), orm.ApiKey.expires_at > now_utc())
        )
    return list(session.scalars(query))


def revoke(session: Session, key_id: uuid.UUID) -> orm.ApiKey | None:
    """Revoke a key (idempotent: a revoked key keeps its first revocation time)."""
    row = read(session, key_id)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = now_utc()
        session.flush()
    return row


def touch(session: Session, key_id: uuid.UUID, when: dt.datetime) -> None:
    """Record a use (callers throttle this: it is a write)."""
    session.execute(sa.update(orm.ApiKey).where(orm.ApiKey.id == key_id).values(last_used_at=when))


def any_exists(session: Session) -> bool:
    """Whether any key was ever created (revoked and expired ones count: revoking never reopens a server)."""
    return session.execute(sa.select(orm.ApiKey.id).limit(1)).first() is not None


def active_admin(session: Session) -> orm.ApiKey | None:
    """Some admin key that still works, if there is one."""
    query = (
        sa.select(orm.ApiKey)
        .where(orm.ApiKey.scope == "admin", orm.ApiKey.revoked_at.is_(None))
        .where(sa.or_(orm.ApiKey.expires_at.is_(None), orm.ApiKey.expires_at > now_utc()))
        .order_by(orm.ApiKey.created)
        .limit(1)
    )
    return session.scalars(query).first()
