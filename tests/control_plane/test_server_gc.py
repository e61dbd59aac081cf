"""A server process freezes what its app's start-up made (``server.settle_garbage_collector``): full collections no
longer walk it, and garbage made afterwards is still collected. Checked in a fresh interpreter that builds a worker's
app as ``orch server start --workers N`` does (the test process's own collector is left alone).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import orch_env

pytestmark = [pytest.mark.integration]

PROBE = """
import gc, json
from orch.control_plane.server import worker_app

app = worker_app()
frozen, left = gc.get_freeze_count(), len(gc.get_objects())

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle only the collector can free
del a, b
print(json.dumps({"frozen": frozen, "left": left, "collected": gc.collect()}))
"""


def test_a_worker_freezes_its_start_up_objects_and_still_collects_new_garbage(orch_home: Path) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], env=orch_env(orch_home), capture_output=True, text=True, timeout=120
    )
    assert probe.returncode == 0, probe.stderr
    out = json.loads(probe.stdout.splitlines()[-1])
    assert out["frozen"] > 50_000  # the app and everything imported to build it (~134,000 here)
    assert out["left"] < 1_000  # what a full collection still walks
    assert out["collected"] >= 2  # the two nodes of the cycle made after the freeze
