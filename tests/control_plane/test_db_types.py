"""``Timestamp`` on SQLite: the one-step text formatting writes exactly what SQLAlchemy's own path writes, so rows
written before and after compare and sort alike; naive datetimes are refused on both paths. JSON columns on SQLite:
``json_text`` writes the same JSON values as ``json.dumps`` (rows written before and after read back alike)."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from orch.control_plane.db.engine import get_database, json_text
from orch.control_plane.db.types import Timestamp

pytestmark = pytest.mark.unit


def _sqlalchemy_path(value: dt.datetime) -> str:
    """What SQLAlchemy writes: the decorator's UTC conversion, then SQLite ``DateTime``'s own formatting."""
    naive = value.astimezone(dt.UTC).replace(tzinfo=None)
    dialect = sqlite.dialect()
    processor = dialect.type_descriptor(sa.DateTime()).bind_processor(dialect)
    assert processor is not None
    return str(processor(naive))


def test_sqlite_text_equals_sqlalchemy_formatting_on_random_values() -> None:
    process = Timestamp().bind_processor(sqlite.dialect())
    rng = random.Random(7)
    zones = [dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-8))]
    for _ in range(20_000):
        seconds = rng.uniform(86_400 * 400, 86_400 * 365 * 8_000)  # year ~1971 .. ~9970
        value = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
        value = value.replace(microsecond=rng.choice([0, rng.randrange(1_000_000)])).astimezone(rng.choice(zones))
        assert process(value) == _sqlalchemy_path(value), value


def test_sqlite_refuses_naive_datetimes_and_passes_none() -> None:
    process = Timestamp().bind_processor(sqlite.dialect())
    assert process(None) is None
    with pytest.raises(ValueError, match="aware"):
        process(dt.datetime(2026, 1, 1))


def test_round_trip_through_sqlite_keeps_the_instant() -> None:
    engine = sa.create_engine("sqlite://")
    table = sa.Table("t", sa.MetaData(), sa.Column("at", Timestamp()))
    table.metadata.create_all(engine)
    value = dt.datetime(2026, 3, 8, 2, 30, 0, 123, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"at": value}])
        stored = conn.execute(sa.text("SELECT at FROM t")).scalar_one()
        read = conn.execute(sa.select(table.c.at)).scalar_one()
    assert stored == "2026-03-08 07:30:00.000123"
    assert read == value and read.tzinfo is dt.UTC


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(_JSON_VALUES)
def test_json_text_reads_back_as_json_dumps_does(value: Any) -> None:
    assert json.loads(json_text(value)) == json.loads(json.dumps(value))


def test_json_text_writes_what_json_dumps_writes_for_the_edge_cases() -> None:
    value = {"inf": math.inf, "-inf": -math.inf, "int keys": {1: "one"}, "tuple": (1, 2), "text": "é\u2028\x00"}
    assert json.loads(json_text(value)) == json.loads(json.dumps(value))
    nan = json.loads(json_text([math.nan]))[0]
    assert math.isnan(nan)
    assert json_text([]) == "[]" and json_text({}) == "{}" and json_text(None) == "null"  # see task_runs._EMPTY_JSON


def test_sqlite_json_columns_are_written_with_json_text(tmp_path: Any) -> None:
    """The SQLite engine writes JSON columns with ``json_text``, and SQLite's JSON functions read them."""
    db = get_database(f"sqlite:///{tmp_path / 'orch.db'}")
    table = sa.Table("t", sa.MetaData(), sa.Column("doc", sa.JSON()))
    with db.engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), [{"doc": {"tags": ["a", "é"], "n": 1.5}}])
        raw = conn.execute(sa.text("SELECT doc FROM t")).scalar_one()
        assert raw == json_text({"tags": ["a", "é"], "n": 1.5})
        found = conn.execute(sa.text("SELECT value FROM t, json_each(t.doc, '$.tags') ORDER BY value")).scalars()
        assert list(found) == ["a", "é"]
        assert conn.execute(sa.select(table.c.doc)).scalar_one() == {"tags": ["a", "é"], "n": 1.5}
