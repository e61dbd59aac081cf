"""Bulk writes through the database driver: a Core statement compiled once, rows turned into driver tuples.

``Connection.execute(statement, rows)`` spends most of a small row's cost in SQLAlchemy's per-row machinery
(parameter dicts rebuilt, every value looked up by name and processed one by one, the compiled statement's cache
checked per call). For the task-run batch, the path under every task the SDK runs, that machinery cost more than
SQLite's own insert. :class:`DriverBulk` keeps SQLAlchemy as the one place that knows the SQL and each column's
type conversion: it compiles the statement for the connection's dialect once per column set and asks each column
type for its bind processor; then each row becomes one tuple of driver values and the driver's ``executemany``
runs inside the connection's transaction.

Only for positional-parameter drivers (SQLite's ``qmark``). Statements that need SQLAlchemy to compute values per
row (Python-side column defaults the rows leave out) are refused when compiled, so nothing is silently skipped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from orch.control_plane.db.types import Timestamp

__all__ = ["DriverBulk", "Times", "driver_cursor"]

# Datetimes already formatted as the timestamp columns store them, keyed by the object's ``id()``: hashing an aware
# datetime computes its UTC offset, ~3 times the cost of formatting it from text. Each entry keeps its datetime (so
# the id cannot be reused while the entry exists) and is used only for that very object.
Times = dict[int, tuple[dt.datetime, str]]


class DriverBulk:
    """``statement`` compiled for ``dialect`` with the parameter names ``keys`` (every row carries all of them)."""

    def __init__(self, statement: sa.Insert | sa.Update, dialect: Dialect, keys: Sequence[str]) -> None:
        if not dialect.positional:
            raise ValueError(f"{dialect.name}: DriverBulk needs a positional parameter style")
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        if compiled.insert_prefetch or compiled.update_prefetch:
            missing = [c.key for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
            raise ValueError(f"the rows must carry {missing}: SQLAlchemy would compute them per row")
        names = list(compiled.positiontup or ())
        unknown = sorted(set(names) - set(keys))
        if unknown:
            raise ValueError(f"the statement takes parameters the rows lack: {unknown}")
        self.sql = compiled.string
        self._get: Callable[[dict[str, Any]], Any] = operator.itemgetter(*names)
        self._single = len(names) == 1
        processors: list[tuple[int, Callable[[Any], Any], bool]] = []
        for position, name in enumerate(names):
            type_ = compiled.binds[name].type
            processor = type_.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                # Timestamp columns all write an instant alike: their values may share one formatting (``params``).
                processors.append((position, processor, isinstance(type_, Timestamp)))
        self._processors = processors

    def params(self, rows: Iterable[dict[str, Any]], times: Times | None = None) -> list[Sequence[Any]]:
        """The rows as driver tuples, each value converted by its column type as SQLAlchemy would (``None``
        included: a JSON column turns it into ``'null'``).

        Formatting a timestamp costs ~1.5 µs and a run's times repeat (its state's time is also its end time, ...):
        each time object is formatted once per call (the timestamp columns all write an instant the same way).
        ``times`` may bring datetimes the caller already formatted exactly so (it is filled in further)."""
        get, processors = self._get, self._processors
        if times is None:
            times = {}
        out: list[Sequence[Any]] = []
        for row in rows:
            values = [get(row)] if self._single else list(get(row))
            for position, process, is_time in processors:
                value = values[position]
                if is_time:
                    known = times.get(id(value))
                    if known is not None and known[0] is value:
                        values[position] = known[1]
                    else:
                        text = process(value)
                        times[id(value)] = (value, text)
                        values[position] = text
                else:
                    values[position] = process(value)
            out.append(values)
        return out

    def executemany(self, conn: sa.Connection, rows: Iterable[dict[str, Any]], times: Times | None = None) -> None:
        """Run the statement for every row on ``conn``'s driver connection, in its current transaction."""
        params = self.params(rows, times)
        if params:
            with driver_cursor(conn, self.sql) as cursor:
                cursor.executemany(self.sql, params)


@contextlib.contextmanager
def driver_cursor(conn: sa.Connection, sql: str) -> Iterator[Any]:
    """A cursor of ``conn``'s driver connection (in its current transaction). The driver's errors come out as
    SQLAlchemy's (``IntegrityError``, ``OperationalError``, ...), which the API turns into 4xx/503 answers like
    any other statement's."""
    dialect = conn.dialect
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    except dialect.loaded_dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc
    finally:
        cursor.close()
