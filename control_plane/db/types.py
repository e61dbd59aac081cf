"""Column types that behave the same on SQLite and PostgreSQL.

- ``Timestamp``: always an aware UTC datetime in Python; ``timestamptz`` on PostgreSQL, naive UTC text on SQLite.
- ``JSONType``: ``jsonb`` on PostgreSQL (indexable, ``@>``), JSON text on SQLite.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect


class Timestamp(sa.TypeDecorator[dt.datetime]):
    impl = sa.DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[dt.datetime]:
        return dt.datetime

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.DateTime(timezone=False))

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("orch stores aware datetimes only")
        value = value.astimezone(dt.UTC)
        if dialect.name != "postgresql":
            value = value.replace(tzinfo=None)
        return value

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return super().bind_processor(dialect)

        # SQLite stores the naive UTC time as text. SQLAlchemy's own path (this decorator, then its SQLite DateTime
        # formatting) costs ~3.3 µs per value, and a task run writes four: format the text in one step, exactly as
        # SQLAlchemy writes it ("YYYY-MM-DD HH:MM:SS.ffffff"; a test compares both on random values).
        def process(value: dt.datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("orch stores aware datetimes only")
            return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
