"""Flows: get-or-create by name, read, filter, delete."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orch.control_plane.db import orm
from orch.control_plane.models._common import tags_contain_all
from orch.control_plane.schemas.filters import FlowFilter
from orch.control_plane.schemas.flows import FlowCreate, FlowUpdate


def create(session: Session, data: FlowCreate) -> orm.Flow:
    """Get-or-create by name."""
    return get_or_create(session, data)[0]


def get_or_create(session: Session, data: FlowCreate) -> tuple[orm.Flow, bool]:
    """Get-or-create by name: ``(flow, created)``. Safe when several clients create the same name at once: one
    creates it, the others get it back with ``created=False``."""
    existing = read_by_name(session, data.name)
    if existing is not None:
        return existing, False
    try:
        with session.begin_nested():
            flow = orm.Flow(name=data.name, tags=list(data.tags))
            session.add(flow)
            session.flush()
        return flow, True
    except IntegrityError:
        found = read_by_name(session, data.name)
        assert found is not None
        return found, False


def read(session: Session, flow_id: uuid.UUID) -> orm.Flow | None:
    return session.get(orm.Flow, flow_id)


def read_by_name(session: Session, name: str) -> orm.Flow | None:
    return session.scalars(sa.select(orm.Flow).where(orm.Flow.name == name)).first()


def update(session: Session, flow_id: uuid.UUID, data: FlowUpdate) -> orm.Flow | None:
    flow = read(session, flow_id)
    if flow is None:
        return None
    if data.tags is not None:
        flow.tags = list(data.tags)
    session.flush()
    return flow


def apply_filter(session: Session, query: sa.Select[Any], flt: FlowFilter | None) -> sa.Select[Any]:
    if flt is None:
        return query
    if flt.id and flt.id.any_ is not None:
        query = query.where(orm.Flow.id.in_(flt.id.any_))
    if flt.name and flt.name.any_ is not None:
        query = query.where(orm.Flow.name.in_(flt.name.any_))
    if flt.name and flt.name.like_:
        query = query.where(orm.Flow.name.ilike(f"%{flt.name.like_}%"))
    if flt.tags and flt.tags.all_:
        query = query.where(tags_contain_all(session, orm.Flow.tags, flt.tags.all_))
    return query


def filter_(session: Session, flt: FlowFilter | None, limit: int, offset: int) -> list[orm.Flow]:
    query = apply_filter(session, sa.select(orm.Flow), flt).order_by(orm.Flow.name).limit(limit).offset(offset)
    return list(session.scalars(query))


def delete(session: Session, flow_id: uuid.UUID) -> bool:
    result = session.execute(sa.delete(orm.Flow).where(orm.Flow.id == flow_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]
