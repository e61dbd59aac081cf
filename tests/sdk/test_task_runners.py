"""Task runners: threads, spawned processes and a real Dask ``LocalCluster`` (one per module, one worker process).

Tasks that run in other processes must still report their states and logs to this process's recorder.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import cloudpickle
import pytest

from orch import flow, get_run_logger, task
from orch.task_runners import DaskTaskRunner, ProcessPoolTaskRunner, ThreadPoolTaskRunner

# Worker processes get these tasks by value, so they need not import the test package.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@task
def where(x: int) -> tuple[int, int]:
    get_run_logger().info("running %s in %s", x, os.getpid())
    return x * 2, os.getpid()


@task(retries=1)
def fails_once_per_process(marker: str) -> str:
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt")
    return "second attempt"


@task
def broken() -> None:
    raise ValueError("bad in worker")


@task
def unpicklable() -> Any:
    return threading.Lock()  # cannot travel back to the parent process


def _check_remote_run(read: Any, runner: Any, tmp_path: Any) -> None:
    @flow(task_runner=runner)
    def distributed() -> Any:
        futures = where.map([1, 2, 3])
        results = [f.result() for f in futures]
        retried = fails_once_per_process.submit(str(tmp_path / "marker")).result()
        failed = broken.submit()
        failed.wait()
        assert failed.state.is_failed()
        with pytest.raises(ValueError, match="bad in worker"):
            failed.result()
        stuck = unpicklable.submit()
        stuck.wait()
        assert stuck.state.is_failed()
        assert "could not be pickled" in (stuck.state.message or "")
        return results, retried, where.submit(where.submit(5)).state.type

    results, retried, _ = distributed()
    assert [r[0] for r in results] == [2, 4, 6]
    assert all(pid != os.getpid() for _, pid in results)
    assert retried == "second attempt"
    [run] = read.flow_runs()
    task_runs = {t.name: t for t in read.task_runs(run.id)}
    assert task_runs["where-0"].state_name == "Completed"
    assert task_runs["fails_once_per_process-0"].run_count == 2
    assert task_runs["broken-0"].state_name == "Failed"
    assert task_runs["unpicklable-0"].state_name == "Failed"
    names = [s.name for s in read.task_run_states(task_runs["fails_once_per_process-0"].id)]
    assert names == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    logs = [log for log in read.logs(run.id) if log.message.startswith("running 1 in")]
    assert len(logs) == 1
    assert logs[0].task_run_id == task_runs["where-0"].id


@pytest.mark.unit
def test_thread_pool_runs_tasks_concurrently(read: Any) -> None:
    barrier = threading.Barrier(2, timeout=10)

    @task
    def meet() -> int:
        barrier.wait()  # both must be running at once, or this times out
        return threading.get_ident()

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def f() -> list[int]:
        return [fut.result() for fut in [meet.submit(), meet.submit()]]

    idents = f()
    assert len(set(idents)) == 2
    assert threading.get_ident() not in idents


@pytest.mark.integration
def test_process_pool_runner(read: Any, tmp_path: Any) -> None:
    _check_remote_run(read, ProcessPoolTaskRunner(max_workers=2), tmp_path)


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.mark.integration
@pytest.mark.slow
def test_dask_runner_on_a_local_cluster(read: Any, tmp_path: Any, dask_cluster: Any) -> None:
    _check_remote_run(read, DaskTaskRunner(address=dask_cluster.scheduler_address), tmp_path)


@pytest.mark.unit
def test_runner_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        ThreadPoolTaskRunner(max_workers=0)
    with pytest.raises(ValueError, match="max_workers"):
        ProcessPoolTaskRunner(max_workers=0)
