"""Helpers shared by the model modules: state conversion, keyset cursors, JSON-array tag filters."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from orch.control_plane.db import orm
from orch.control_plane.schemas.base import now_utc
from orch.control_plane.schemas.states import State, StateDetails, StateType
from orch.exceptions import InvalidInput


def state_of(row: orm.FlowRun | orm.TaskRun) -> State | None:
    """The current state stored on a run row."""
    if row.state_type is None:
        return None
    return State(
        type=StateType(row.state_type),
        name=row.state_name or row.state_type.title(),
        timestamp=row.state_timestamp or row.updated,
        message=row.state_message,
        state_details=StateDetails.model_validate(row.state_details or {}),
        data=row.state_data,
    )


def state_from_columns(row: Any) -> State | None:
    """The current state from a mapping of a run's columns (a Core result row)."""
    if row["state_type"] is None:
        return None
    return State(
        type=StateType(row["state_type"]),
        name=row["state_name"] or row["state_type"].title(),
        timestamp=row["state_timestamp"] or row["updated"],
        message=row["state_message"],
        state_details=StateDetails.model_validate(row["state_details"] or {}),
        data=row["state_data"],
    )


# A state type's value as a plain ``str``: ``member.value`` is a Python-level property (this lookup hashes in C),
# and JSON encoders take a slower path for ``str`` subclasses such as the member itself.
STATE_TYPE_VALUES: dict[StateType, str] = {member: member.value for member in StateType}


def state_columns(state: State) -> dict[str, Any]:
    return {
        "state_type": STATE_TYPE_VALUES[state.type],
        "state_name": state.name,
        "state_timestamp": state.timestamp,
        "state_message": state.message,
        "state_details": details_json(state),
        "state_data": state.data,
    }


def details_json(state: State) -> dict[str, Any]:
    details = state.state_details
    # Most states carry no details: skip pydantic's serializer for them (the task-run batch path is hot).
    if not details.model_fields_set:
        return {}
    return details.model_dump(mode="json", exclude_none=True)


def history_row(state: State) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "type": state.type.value,
        "name": state.name,
        "timestamp": state.timestamp,
        "message": state.message,
        "state_details": details_json(state),
        "data": state.data,
        # Server time: it orders states that share a (clamped) timestamp.
        "created": now_utc(),
        "updated": state.timestamp,
    }


# -- keyset pagination ---------------------------------------------------------------------------------------------


def encode_cursor(values: list[Any]) -> str:
    def enc(v: Any) -> Any:
        if isinstance(v, dt.datetime):
            return {"t": v.isoformat()}
        if isinstance(v, uuid.UUID):
            return {"u": str(v)}
        return v

    raw = json.dumps([enc(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, columns: list[Any]) -> list[Any]:
    """The values of a cursor made by ``encode_cursor`` for the same sort columns; a 422 for anything else."""

    def dec(v: Any) -> Any:
        if isinstance(v, dict) and "t" in v:
            return dt.datetime.fromisoformat(v["t"])
        if isinstance(v, dict) and "u" in v:
            return uuid.UUID(v["u"])
        return v

    invalid = InvalidInput("Invalid cursor: pass back the next_cursor of a previous page unchanged.")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if not isinstance(data, list):
            raise invalid
        values = [dec(v) for v in data]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise invalid from exc
    if len(values) != len(columns):
        raise InvalidInput("Invalid cursor: it belongs to another sort order.")
    for value, column in zip(values, columns, strict=True):
        expected = column.type.python_type
        if not isinstance(value, expected) or (isinstance(value, dt.datetime) and value.tzinfo is None):
            raise InvalidInput("Invalid cursor: it belongs to another sort order.")
    return values


def keyset_condition(
    columns: list[sa.ColumnElement[Any]], values: list[Any], descending: bool
) -> sa.ColumnElement[bool]:
    """Rows strictly after ``values`` in the order (col1, col2, ...) ascending or descending (lexicographic)."""
    clauses: list[sa.ColumnElement[bool]] = []
    for i, column in enumerate(columns):
        eqs = [columns[j] == values[j] for j in range(i)]
        cmp = column < values[i] if descending else column > values[i]
        clauses.append(sa.and_(*eqs, cmp))
    # The redundant bound on the leading column is an index condition (the scan starts at the cursor); the OR
    # alone is only a filter for PostgreSQL, so deep pages would read every earlier row.
    first = columns[0] <= values[0] if descending else columns[0] >= values[0]
    return sa.and_(first, sa.or_(*clauses))


def keyset_page(
    session: Session, query: sa.Select[Any], columns: list[Any], descending: bool, flt: Any
) -> tuple[list[Any], str | None]:
    """One page of ``query`` ordered by ``columns`` (the last one unique), after ``flt.cursor``, at most
    ``flt.limit`` rows; returns the rows and the next page's cursor (``None`` on the last page)."""
    if flt.cursor:
        query = query.where(keyset_condition(columns, decode_cursor(flt.cursor, columns), descending))
    query = query.order_by(*[c.desc() if descending else c.asc() for c in columns])
    if flt.offset:
        query = query.offset(flt.offset)
    rows = list(session.scalars(query.limit(flt.limit + 1)))
    if len(rows) <= flt.limit:
        return rows, None
    rows = rows[: flt.limit]
    return rows, encode_cursor([getattr(rows[-1], c.key) for c in columns])


# -- field filters shared by the list endpoints --------------------------------------------------------------------


def where_in(query: sa.Select[Any], column: Any, flt: Any) -> sa.Select[Any]:
    """``{"any_": [...]}`` on a column (an IdFilter or NameFilter's list part)."""
    if flt is not None and flt.any_ is not None:
        query = query.where(column.in_(flt.any_))
    return query


def where_name(query: sa.Select[Any], column: Any, flt: Any) -> sa.Select[Any]:
    """A NameFilter: ``any_`` exact names and/or ``like_`` (case-insensitive substring)."""
    query = where_in(query, column, flt)
    if flt is not None and flt.like_:
        query = query.where(column.ilike(f"%{flt.like_}%"))
    return query


def where_optional_id(query: sa.Select[Any], column: Any, flt: Any) -> sa.Select[Any]:
    """An OptionalIdFilter: ``any_`` ids and/or ``is_null_``."""
    query = where_in(query, column, flt)
    if flt is not None and flt.is_null_ is not None:
        query = query.where(column.is_(None) if flt.is_null_ else column.is_not(None))
    return query


# -- tags ----------------------------------------------------------------------------------------------------------


def tags_contain_all(session: Session, column: Any, tags: list[str]) -> sa.ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        return sa.type_coerce(column, JSONB).contains(tags)
    conds = []
    for tag in tags:
        each = sa.func.json_each(column).table_valued("value")
        conds.append(sa.exists(sa.select(1).select_from(each).where(each.c.value == tag)))
    return sa.and_(*conds)


def tags_contain_any(session: Session, column: Any, tags: list[str]) -> sa.ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        return sa.or_(*[sa.type_coerce(column, JSONB).contains([t]) for t in tags])
    each = sa.func.json_each(column).table_valued("value")
    return sa.exists(sa.select(1).select_from(each).where(each.c.value.in_(tags)))
