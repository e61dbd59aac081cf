"""The heartbeat thread outlives the flow runs that started it: settings that turn invalid in the process later
(e.g. a test, or a notebook, changing ``ORCH_API_URL``) must not kill it with an exception."""

from __future__ import annotations

import pytest

from orch._engine import heartbeats
from orch.settings import clear_settings_cache

pytestmark = pytest.mark.unit


def test_interval_survives_settings_that_became_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_HEARTBEAT_INTERVAL", "3")
    clear_settings_cache()
    assert heartbeats._interval() == 3
    monkeypatch.setenv("ORCH_API_URL", "ftp://x")
    clear_settings_cache()
    try:
        assert heartbeats._interval() == heartbeats.INTERVAL
    finally:
        monkeypatch.undo()
        clear_settings_cache()
