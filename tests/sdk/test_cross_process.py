"""Caching across processes: a second Python process finds the result the first one persisted."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_cache_hit_in_a_second_process(harness: Any, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    marker = tmp_path / "calls.txt"
    script.write_text(
        textwrap.dedent(
            f"""
            from orch import flow, task
            from orch.cache_policies import INPUTS

            @task(cache_policy=INPUTS)
            def expensive(x):
                with open({str(marker)!r}, "a") as fh:
                    fh.write("ran\\n")
                return x + 1

            @flow
            def job(x: int) -> int:
                return expensive(x)

            print(job(41))
            """
        )
    )
    env = {"ORCH_HOME": str(harness.home), "PATH": "/usr/bin:/bin", "ORCH_LOG_TO_CONSOLE": "false"}
    for _ in range(2):
        out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == "42"
    assert marker.read_text().splitlines() == ["ran"]
