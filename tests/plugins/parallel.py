"""How the suite is spread over pytest-xdist workers (`scripts/test.sh` runs `pytest -n 4 --dist loadfile`).

**One test file is one unit** (`--dist loadfile`): all tests of a module run on one worker, in file order. So a
module-scoped fixture (a CDK synth, a Lambda build, a Terraform init, a server with agents) is built once, not
once on each worker that happens to get one of its tests, and the LocalStack tests (tests/test_aws_harness.py) share
one LocalStack. (Finer units through `xdist_group` marks and `--dist loadgroup` would be nicer, but with pytest 9.2
loadgroup silently stops grouping: pytest-dev/pytest-xdist#1386.)

Every worker has its own session fixtures: its own PostgreSQL server, moto server and (if it runs LocalStack
tests) LocalStack, each in its own temporary folder on its own port (tests/plugins/ports.py hands each worker a
separate slice of ports; localstack/ctl.py gives each LocalStack its own data folders).

**Longest files first.** The units reach xdist in the order they are collected, so each worker sorts its collection
by file weight — the sum of the file's test durations recorded in `tests/durations.json` (`DEFAULT_SECONDS` for a
test missing there) — heaviest first, keeping the order of tests inside a file. A long file then never starts last
and leaves the other workers idle at the end (the end-to-end test's ~60 s wait for EventBridge's first tick, too,
overlaps the rest). xdist's own reordering (by number of tests per file) is turned off for that. Refresh the file
after big changes with `.venv/bin/pytest -n 4 --dist loadfile --store-durations` (the way CI runs the tests: the
numbers are only compared with each other), and commit it.

The order only matters for wall time: any order passes. Without xdist the plugin changes nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

DURATIONS_PATH = Path(__file__).resolve().parents[1] / "durations.json"
DEFAULT_SECONDS = 0.3
# Shorter tests are left out of the file: they count DEFAULT_SECONDS, which is close enough for ordering.
RECORD_MIN_SECONDS = 1.0
_FILE_UNIT_MODES = frozenset({"loadfile", "loadscope", "loadgroup"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-durations",
        action="store_true",
        default=False,
        help=f"record each test's duration (setup + call + teardown) in tests/{DURATIONS_PATH.name}, for scheduling",
    )


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "dist", "no") in _FILE_UNIT_MODES:
        # the units arrive already in the order we want; xdist would re-sort them by number of tests
        config.option.loadscopereorder = False
    if os.environ.get("PYTEST_XDIST_WORKER") is not None:
        config.pluginmanager.register(HeaviestFilesFirst(), "orch-heaviest-files-first")
    elif config.getoption("store_durations"):
        config.pluginmanager.register(DurationRecorder(), "orch-duration-recorder")


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _load_durations() -> dict[str, float]:
    try:
        data = json.loads(DURATIONS_PATH.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


class HeaviestFilesFirst:
    """On an xdist worker: sort the collection by file weight (every worker computes the same order), and report
    how the worker spent the session (how many files and tests, seconds in tests, session length)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.files: set[str] = set()
        self.tests = 0
        self.in_tests = 0.0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.in_tests += report.duration
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.tests += 1
            self.files.add(_file_of(report.nodeid))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        hand_to_controller(
            session.config,
            [
                f"worker: {len(self.files)} files, {self.tests} tests, {self.in_tests:.0f} s in tests, "
                f"session {time.monotonic() - self.started:.0f} s"
            ],
        )

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        durations = _load_durations()
        weight: dict[str, float] = defaultdict(float)
        first: dict[str, int] = {}
        for index, item in enumerate(items):
            unit = _file_of(item.nodeid)
            weight[unit] += durations.get(item.nodeid, DEFAULT_SECONDS)
            first.setdefault(unit, index)

        def key(index: int) -> tuple[float, int, int]:
            unit = _file_of(items[index].nodeid)
            return (-weight[unit], first[unit], index)

        items[:] = [items[i] for i in sorted(range(len(items)), key=key)]


class DurationRecorder:
    """`--store-durations` (on the controller under xdist): sums each test's phases and updates the file.

    Only the tests that ran are updated, so a partial run (`-m unit`, one folder) keeps the others' numbers; the
    entries of test files that no longer exist are dropped."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid] += report.duration

    def pytest_sessionfinish(self) -> None:
        repo = DURATIONS_PATH.parents[1]
        recorded = {k: v for k, v in _load_durations().items() if (repo / _file_of(k)).is_file()}
        for nodeid, seconds in self.seconds.items():
            if seconds >= RECORD_MIN_SECONDS:
                recorded[nodeid] = round(seconds, 1)
            else:
                recorded.pop(nodeid, None)
        DURATIONS_PATH.write_text(json.dumps(dict(sorted(recorded.items())), indent=1) + "\n")


# -- summary lines from workers --------------------------------------------------------------------------------
# An xdist worker prints no terminal summary: plugins that print one (emulator timings, the e2e test's phases) hand
# their lines to the controller through xdist's workeroutput, and the controller prints them.

_SUMMARY_KEY = "orch_summary_lines"
_from_workers: list[str] = []


def hand_to_controller(config: pytest.Config, lines: list[str]) -> bool:
    """On an xdist worker, queue summary lines for the controller to print and return True; elsewhere False."""
    output: dict[str, Any] | None = getattr(config, "workeroutput", None)
    if output is None:
        return False
    output.setdefault(_SUMMARY_KEY, []).extend(lines)
    return True


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist (controller): a worker finished; keep what it handed over."""
    worker = getattr(getattr(node, "gateway", None), "id", "worker")
    for line in getattr(node, "workeroutput", {}).get(_SUMMARY_KEY, []):
        _from_workers.append(f"[{worker}] {line}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in sorted(_from_workers):
        terminalreporter.write_line(line)
