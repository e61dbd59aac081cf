"""Fixtures of the end-to-end tests: phase timings, printed at the end of pytest's terminal summary."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.timings import Timings
from tests.plugins.parallel import hand_to_controller

_reports: list[str] = []


@pytest.fixture
def timings(request: pytest.FixtureRequest) -> Iterator[Timings]:
    """This test's phase timings; reported even when the test fails."""
    recorded = Timings(request.node.name)
    yield recorded
    _reports.append(recorded.report())


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # under pytest-xdist the controller prints the summary: hand the reports over (tests/plugins/parallel.py)
    if hand_to_controller(session.config, _reports):
        _reports.clear()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for report in _reports:
        terminalreporter.write_line(report)
