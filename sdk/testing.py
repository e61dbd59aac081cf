"""Test helpers for users of orch: run flows against a throwaway embedded control plane.

``orch_test_harness()`` points orch at a fresh temporary ``ORCH_HOME`` in embedded mode (``ORCH_API_URL``
unset), so every flow run, task run and log line of the block lands in a new SQLite database that disappears
afterwards; the previous settings, client and recorder are restored on exit. In pytest::

    import pytest
    from orch.testing import orch_test_harness

    @pytest.fixture(autouse=True, scope="session")
    def orch_harness():
        with orch_test_harness() as harness:
            yield harness

    def test_my_flow(orch_harness):
        assert my_flow() == 42
        runs = orch_harness.client.read_flow_runs()
        assert runs[0].state_name == "Completed"

``harness.flush()`` makes sure batched task-run records and logs are on the control plane before you read them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["OrchTestHarness", "orch_test_harness"]

_VARS = ("ORCH_HOME", "ORCH_API_URL", "ORCH_API_KEY", "ORCH_PROFILE")


class OrchTestHarness:
    """What ``orch_test_harness()`` yields: the temporary home, its client, and a way to flush records."""

    def __init__(self, home: Path) -> None:
        self.home = home

    @property
    def client(self) -> Any:
        from orch.client import get_client

        return get_client()

    def flush(self, timeout: float = 10.0) -> bool:
        """Send every batched task-run record and log line now; False if some could not be sent."""
        from orch._engine.recorder import get_recorder

        return get_recorder().flush(timeout)


def _reset_caches() -> None:
    from orch import client, settings
    from orch.client import _embedded

    settings.clear_settings_cache()
    client.reset_clients()
    _embedded.forget_embedded_apps()


@contextlib.contextmanager
def orch_test_harness(home: str | os.PathLike[str] | None = None) -> Iterator[OrchTestHarness]:
    """A temporary embedded control plane for the duration of the block (see the module docstring)."""
    from orch._engine import recorder as recorder_module

    saved = {name: os.environ.get(name) for name in _VARS}
    with contextlib.ExitStack() as stack:
        if home is None:
            home = stack.enter_context(tempfile.TemporaryDirectory(prefix="orch-test-"))
        for name in _VARS:
            os.environ.pop(name, None)
        os.environ["ORCH_HOME"] = str(home)
        _reset_caches()
        previous = recorder_module.set_recorder(None)
        try:
            yield OrchTestHarness(Path(home))
        finally:
            current = recorder_module.set_recorder(previous)
            if current is not None:
                current.close()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            _reset_caches()
