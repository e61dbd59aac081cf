"""Logs: appended in batches, read in keyset pages (a run's log can hold millions of lines)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from orch.control_plane.db import orm
from orch.control_plane.models._common import keyset_page
from orch.control_plane.schemas.base import now_utc
from orch.control_plane.schemas.filters import LogFilter, LogSort
from orch.control_plane.schemas.logs import LogCreate


def create_many(session: Session, logs: list[LogCreate]) -> int:
    if not logs:
        return 0
    now = now_utc()
    session.execute(
        sa.insert(orm.Log),
        [
            {
                "id": uuid.uuid4(),
                "created": now,
                "updated": now,
                "name": log.name,
                "level": log.level,
                "message": log.message,
                "timestamp": log.timestamp,
                "flow_run_id": log.flow_run_id,
                "task_run_id": log.task_run_id,
            }
            for log in logs
        ],
    )
    return len(logs)


def filter_(session: Session, flt: LogFilter) -> tuple[list[orm.Log], str | None]:
    query = sa.select(orm.Log)
    f = flt.logs
    if f is not None:
        if f.flow_run_id and f.flow_run_id.any_ is not None:
            query = query.where(orm.Log.flow_run_id.in_(f.flow_run_id.any_))
        if f.task_run_id:
            if f.task_run_id.any_ is not None:
                query = query.where(orm.Log.task_run_id.in_(f.task_run_id.any_))
            if f.task_run_id.is_null_ is not None:
                col = orm.Log.task_run_id
                query = query.where(col.is_(None) if f.task_run_id.is_null_ else col.is_not(None))
        if f.level is not None:
            if f.level.ge_ is not None:
                query = query.where(orm.Log.level >= f.level.ge_)
            if f.level.le_ is not None:
                query = query.where(orm.Log.level <= f.level.le_)
        if f.timestamp is not None:
            if f.timestamp.after_ is not None:
                query = query.where(orm.Log.timestamp >= f.timestamp.after_)
            if f.timestamp.before_ is not None:
                query = query.where(orm.Log.timestamp <= f.timestamp.before_)
    descending = flt.sort is LogSort.TIMESTAMP_DESC
    columns: list[Any] = [orm.Log.timestamp, orm.Log.id]
    return keyset_page(session, query, columns, descending, flt)
