"""Hypothesis strategies and fixed instants shared by the scheduling tests."""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

UTC = dt.UTC
NY = "America/New_York"

ZONES = ["UTC", NY, "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "America/Sao_Paulo", "Pacific/Chatham"]


def _field(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    single = number.map(str) if not names else st.one_of(number.map(str), st.sampled_from(names))
    ordered_pair = st.tuples(number, number).map(sorted)
    return st.one_of(
        st.just("*"),
        st.integers(1, high - low + 1).map(lambda k: f"*/{k}"),
        single,
        ordered_pair.map(lambda p: f"{p[0]}-{p[1]}"),
        st.tuples(ordered_pair, st.integers(1, 12)).map(lambda t: f"{t[0][0]}-{t[0][1]}/{t[1]}"),
        st.lists(number, min_size=2, max_size=4, unique=True).map(lambda xs: ",".join(map(str, xs))),
    )


CRONS = st.tuples(
    _field(0, 59),
    _field(0, 23),
    _field(1, 31),
    _field(1, 12, ["jan", "feb", "MAR", "jul", "dec"]),
    _field(0, 7, ["sun", "MON", "fri", "sat"]),
).map(" ".join)

DST_WEEKS = [
    dt.datetime(2026, 3, 7, 12, tzinfo=UTC),  # New York spring forward
    dt.datetime(2026, 10, 31, 12, tzinfo=UTC),  # New York fall back
    dt.datetime(2026, 3, 28, 12, tzinfo=UTC),  # London spring forward
    dt.datetime(2026, 10, 24, 12, tzinfo=UTC),  # London fall back
    dt.datetime(2026, 4, 4, 2, tzinfo=UTC),  # Lord Howe: 30-minute fall back
    dt.datetime(2026, 10, 3, 2, tzinfo=UTC),  # Lord Howe: 30-minute spring forward
]
