"""Per-task overhead of orch (and of Prefect 3, when it happens to be importable), printed as JSON.

For N trivial tasks (N = 100, 1,000, 10,000) run inside one flow, the overhead per task is::

    (time of the flow calling the @task-decorated function N times - time of the same flow calling the plain
     function N times) / N

measured from the call of the flow until every task-run record is on the control plane (the recorder's final
flush is included), as wall time and as CPU time of the whole process (SDK, recorder thread and, in embedded mode,
the in-process control plane); on a shared, loaded machine the CPU time is the stable number. Each size is run
several times (plain, decorated, plain, ...) and the figure is the total over the repetitions divided by the
number of tasks: a mean, so a garbage collection or a slow batch that falls in one repetition counts in full.
A full collection of the embedded process takes ~65 ms and comes every few thousand tasks, so each size runs
until at least ``--min-tasks`` tasks (30,000; at least 3 repetitions) have been measured: with 3 repetitions of
100 tasks, one collection more or less would move the figure by ~200 µs. ``--repeat`` fixes the count instead. A
warm-up runs each flow once on a few tasks first (imports, the flows' registration, compiled statements), so the
figures are per task, not per process. The SDK's own hot path (records collected in memory, no control plane) is
reported separately. Both ways of running a task are measured: called directly, and ``.submit()`` (then waited
for). Also measured: an empty flow run (warm, median of 20) and ``python -X importtime -c "import orch"``.

Embedded mode (the default) runs in a throwaway ``ORCH_HOME``; ``--api-url URL`` measures against a running server
too (``orch server start``). Each mode runs in its own child process so the two never share caches::

    python bench/task_overhead.py [--api-url http://127.0.0.1:4200] [--sizes 100 1000 10000]
                                  [--min-tasks 30000 | --repeat 3]
                                  [--prefect-python /path/to/venv-with-prefect/bin/python]

``ORCH_GC_FREEZE=false`` (the one ``ORCH_`` variable passed on to the children) measures without the freeze of the
heap while flows run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from _machine import calibration_ms  # bench/ is the script's folder: first on sys.path


def inc(x: int) -> int:
    return x + 1


def _import_time(module: str, python: str = sys.executable) -> float | None:
    """Total milliseconds of ``import module`` from ``-X importtime`` (the last line is the module itself)."""
    proc = subprocess.run(
        [python, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return None
    lines = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    match = re.match(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|", lines[-1])
    return int(match.group(1)) / 1000 if match else None


def _repetitions(n: int, repeat: int | None, min_tasks: int) -> int:
    return repeat if repeat is not None else max(3, -(-min_tasks // n))


def _measure_orch(sizes: list[int], repeat: int | None, min_tasks: int) -> dict[str, Any]:
    from orch import flow, task
    from orch._engine.recorder import get_recorder

    tinc = task(inc)
    results: dict[str, Any] = {}

    def timed(fn: Any, *args: Any) -> tuple[float, float]:
        """(wall seconds, CPU seconds of the whole process: SDK, recorder thread and embedded server)."""
        start, cpu = time.perf_counter(), time.process_time()
        fn(*args)
        get_recorder().flush(timeout=None)
        return time.perf_counter() - start, time.process_time() - cpu

    def per_task(runs: list[tuple[float, float]], bases: list[tuple[float, float]], n: int) -> dict[str, float]:
        tasks = n * len(runs)
        return {
            "wall_us_per_task": round((sum(r[0] for r in runs) - sum(b[0] for b in bases)) / tasks * 1e6, 1),
            "cpu_us_per_task": round((sum(r[1] for r in runs) - sum(b[1] for b in bases)) / tasks * 1e6, 1),
        }

    @flow
    def empty() -> None:
        pass

    @flow(name="plain")
    def plain(n: int) -> None:
        for i in range(n):
            inc(i)

    @flow(name="direct")
    def direct(n: int) -> None:
        for i in range(n):
            tinc(i)

    @flow(name="submit")
    def submitted(n: int) -> None:
        futures = [tinc.submit(i) for i in range(n)]
        for future in futures:
            future.wait()

    for warm_up in (plain, direct, submitted):
        timed(warm_up, 20)
    for n in sizes:
        bases, directs, submits = [], [], []
        for _ in range(_repetitions(n, repeat, min_tasks)):
            bases.append(timed(plain, n))
            directs.append(timed(direct, n))
            submits.append(timed(submitted, n))
        results[str(n)] = {
            "repetitions": len(bases),
            "direct": per_task(directs, bases, n),
            "submit": per_task(submits, bases, n),
        }
    empty()
    walls, cpus = [], []
    for _ in range(20):
        wall, cpu = timed(empty)
        walls.append(wall)
        cpus.append(cpu)
    results["empty_flow_run_ms"] = {
        "wall_median": round(statistics.median(walls) * 1000, 2),
        "cpu_median": round(statistics.median(cpus) * 1000, 2),
    }
    results["sdk_hot_path_us_per_task"] = _hot_path()
    return results


def _hot_path(n: int = 20_000) -> float:
    """CPU per direct task call in the SDK alone: records go to an in-memory collector, no control plane."""
    import uuid

    from orch import task
    from orch._engine.recorder import CollectingRecorder
    from orch.context import FlowRunContext, flow_run_var
    from orch.results import ResultOptions

    tinc = task(inc)
    token = flow_run_var.set(FlowRunContext(uuid.uuid4(), "bench", "bench", {}, CollectingRecorder(), ResultOptions()))
    try:
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            for i in range(n):
                tinc(i)
            decorated = time.process_time() - start
            start = time.process_time()
            for i in range(n):
                inc(i)
            best = min(best, (decorated - (time.process_time() - start)) / n * 1e6)
        return round(best, 1)
    finally:
        flow_run_var.reset(token)


def _measure_prefect(sizes: list[int]) -> dict[str, Any]:
    """The same direct-call measurement with Prefect 3 (its default local mode), wall and CPU."""
    from prefect import flow, task

    tinc = task(inc)
    results: dict[str, Any] = {}

    def timed(fn: Any) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - start, time.process_time() - cpu

    for n in sizes:

        @flow
        def plain() -> None:
            for i in range(n):  # noqa: B023
                inc(i)

        @flow
        def direct() -> None:
            for i in range(n):  # noqa: B023
                tinc(i)

        plain()
        base = timed(plain)
        run = timed(direct)
        results[str(n)] = {
            "direct": {
                "wall_us_per_task": round((run[0] - base[0]) / n * 1e6, 1),
                "cpu_us_per_task": round((run[1] - base[1]) / n * 1e6, 1),
            }
        }

    @flow
    def empty() -> None:
        pass

    empty()
    results["empty_flow_run_ms"] = {
        "wall_median": round(statistics.median(timed(empty)[0] for _ in range(20)) * 1000, 2)
    }
    return results


def _child(mode: str, sizes: list[int], repeat: int | None, min_tasks: int) -> None:
    if mode == "prefect":
        print(json.dumps(_measure_prefect(sizes)))
        return
    if mode == "embedded":
        from orch.testing import orch_test_harness

        with tempfile.TemporaryDirectory() as home, orch_test_harness(home):
            print(json.dumps(_measure_orch(sizes, repeat, min_tasks)))
        return
    print(json.dumps(_measure_orch(sizes, repeat, min_tasks)))


def _run_child(
    mode: str,
    sizes: list[int],
    env: dict[str, str],
    python: str = sys.executable,
    repeat: int | None = None,
    min_tasks: int = 30_000,
) -> Any:
    counts = ["--repeat", str(repeat)] if repeat is not None else ["--min-tasks", str(min_tasks)]
    proc = subprocess.run(
        [python, __file__, "--child", mode, "--sizes", *map(str, sizes), *counts],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api-url", help="also measure against this running orch server")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000])
    parser.add_argument(
        "--repeat", type=int, help="runs of each size (the figures are their mean); overrides --min-tasks"
    )
    parser.add_argument(
        "--min-tasks", type=int, default=30_000, help="run each size until this many tasks (at least 3 runs)"
    )
    parser.add_argument(
        "--prefect-python", default=sys.executable, help="a Python with prefect installed (never a dependency)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.min_tasks < 1 or any(n < 1 for n in args.sizes):
        parser.error("--min-tasks and --sizes must be at least 1")
    if args.child:
        _child(args.child, args.sizes, args.repeat, args.min_tasks)
        return
    # The children run on orch's defaults, except ORCH_GC_FREEZE (``ORCH_GC_FREEZE=false`` measures without the
    # freeze of the heap while flows run, sdk/_engine/gc_scope.py).
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_") or k == "ORCH_GC_FREEZE"}
    base_env["ORCH_LOG_TO_CONSOLE"] = "false"
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "load_average": os.getloadavg()[0],
        "calibration_loop_ms_before": calibration_ms(),
        # Median of 5 fresh interpreters: one sample on a busy machine says more about the machine than about orch.
        "import_orch_ms": statistics.median(t for t in (_import_time("orch") for _ in range(5)) if t is not None),
        "embedded": _run_child("embedded", args.sizes, base_env, repeat=args.repeat, min_tasks=args.min_tasks),
    }
    if args.api_url:
        server_env = {**base_env, "ORCH_API_URL": args.api_url}
        report["server"] = _run_child("server", args.sizes, server_env, repeat=args.repeat, min_tasks=args.min_tasks)
    prefect_import = _import_time("prefect", args.prefect_python)
    if prefect_import is not None:
        report["import_prefect_ms"] = prefect_import
        report["prefect"] = _run_child("prefect", args.sizes, base_env, args.prefect_python)
    report["calibration_loop_ms_after"] = calibration_ms()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
