"""``RecentRows``: what an async pool remembers of the rows it wrote (see ``test_flow_runs_remembered`` for its use)."""

from __future__ import annotations

import pytest

from orch.control_plane.db.async_pg import RecentRows

pytestmark = [pytest.mark.unit]


def test_recent_rows_are_bounded_forgotten_when_taken_and_never_too_old() -> None:
    rows = RecentRows(size=3, max_age=60)
    for n in range(5):
        rows.put(n, {"n": n})
    assert len(rows) == 3
    assert rows.take(0) is None and rows.take(1) is None  # the least recently written went first
    assert rows.take(2) == {"n": 2}
    assert rows.take(2) is None  # taken: the caller remembers what it writes next
    rows.put(3, {"n": 33})  # written again: now the most recent
    rows.put(5, {"n": 5})
    rows.put(6, {"n": 6})
    assert rows.take(4) is None
    assert rows.take(3) == {"n": 33}
    stale = RecentRows(size=3, max_age=0)
    stale.put("run", {"n": 1})
    assert stale.take("run") is None
