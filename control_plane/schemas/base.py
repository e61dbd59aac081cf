"""Base classes and small types shared by every schema module."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


def now_utc() -> dt.datetime:
    """The current time as an aware UTC datetime: every timestamp in orch is one of these."""
    return dt.datetime.now(dt.UTC)


def assume_utc(value: dt.datetime) -> dt.datetime:
    """Timestamps without an offset are read as UTC (what most clients mean by them); all are kept in UTC."""
    tz = value.tzinfo
    if tz is dt.UTC:  # what the parser gives for "Z" and "+00:00": most timestamps, on every batch of task runs
        return value
    if tz is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("timestamp is out of range once converted to UTC") from None


# Every timestamp of the API: aware, UTC when the client gave no offset.
UtcDateTime = Annotated[dt.datetime, AfterValidator(assume_utc)]


class OrchModel(BaseModel):
    """Base of all API schemas: unknown fields are refused so typos fail loudly with a 422."""

    model_config = ConfigDict(extra="forbid", from_attributes=True, populate_by_name=True)


class ResponseModel(BaseModel):
    """Base of objects the API returns: tolerant of fields added by newer servers."""

    model_config = ConfigDict(extra="ignore", from_attributes=True, populate_by_name=True)


class ObjectBase(ResponseModel):
    """Every stored object is UUID-keyed with created/updated timestamps."""

    id: uuid.UUID
    created: UtcDateTime
    updated: UtcDateTime


# Names users type (flow, deployment, work queue, tag): non-empty, bounded, no control characters.
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Tags = Annotated[list[Tag], Field(max_length=100)]
JSONDict = dict[str, Any]
