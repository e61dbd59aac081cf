"""Caching and persisted results across flow runs and processes, on the embedded control plane."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from orch import flow, task
from orch.cache_policies import INPUTS, RUN_ID, TASK_SOURCE
from orch.states import State

pytestmark = pytest.mark.unit


def test_cached_task_does_not_rerun_across_flow_runs(read: Any) -> None:
    calls: list[int] = []

    @task(cache_policy=INPUTS + TASK_SOURCE)
    def expensive(x: int) -> int:
        calls.append(x)
        return x * 100

    @flow
    def f(x: int) -> int:
        return expensive(x)

    assert f(1) == 100
    assert f(1) == 100
    assert f(2) == 200
    assert calls == [1, 2]
    names = sorted(r.state_name for r in read.task_runs())
    assert names == ["Cached", "Completed", "Completed"]
    cached = next(r for r in read.task_runs() if r.state_name == "Cached")
    assert cached.cache_key
    assert cached.state.data["key"] == cached.cache_key


def test_run_id_policy_caches_within_one_flow_run_only() -> None:
    calls: list[int] = []

    @task(cache_policy=INPUTS + RUN_ID)
    def once_per_run(x: int) -> int:
        calls.append(x)
        return x

    @flow
    def f() -> list[int]:
        return [once_per_run(1), once_per_run(1)]

    f()
    f()
    assert calls == [1, 1]


def test_cache_expiration_and_refresh_cache(read: Any) -> None:
    calls: list[str] = []

    # Long enough that the second run (a few requests on a loaded machine) starts before the entry expires.
    @task(cache_policy=INPUTS, cache_expiration=dt.timedelta(seconds=3))
    def short_lived(x: int) -> int:
        calls.append("short")
        return x

    @flow
    def f() -> int:
        return short_lived(1)

    f()
    f()
    assert calls == ["short"]
    expires = max(r.cache_expiration for r in read.task_runs())
    while dt.datetime.now(dt.UTC) <= expires:  # let the entry expire
        time.sleep(0.05)
    f()
    assert calls == ["short", "short"]

    @task(cache_key_fn=lambda ctx, params: f"fixed-{params['x']}")
    def keyed(x: int) -> str:
        calls.append("keyed")
        return "value"

    @flow
    def g(refresh: bool) -> str:
        return keyed.with_options(refresh_cache=refresh)(7)

    g(False)
    g(False)
    g(True)
    assert calls.count("keyed") == 2


def test_persisted_result_is_referenced_in_the_recorded_state(read: Any, harness: Any) -> None:
    @task(persist_result=True, result_serializer="json")
    def produce() -> dict[str, int]:
        return {"answer": 42}

    @flow
    def f() -> dict[str, int]:
        return produce()

    assert f() == {"answer": 42}
    [run] = read.task_runs()
    ref = run.state.data
    assert ref["serializer"] == "json"
    assert ref["storage"] == (harness.home / "storage").resolve().as_uri()
    assert (harness.home / "storage" / ref["key"]).exists()
    # A state read back from the server loads its result from storage.
    assert State.from_api(run.state).result() == {"answer": 42}


def test_flow_persist_result(read: Any) -> None:
    @flow(persist_result=True)
    def f() -> list[int]:
        return [1, 2]

    f()
    [run] = read.flow_runs()
    assert State.from_api(run.state).result() == [1, 2]


@pytest.mark.aws
def test_results_to_s3_with_moto(read: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's ``mock_aws`` stands in for S3 in-process; orch's real boto3 code path runs against it."""
    import boto3
    from moto import mock_aws

    from orch import results

    for name, value in (
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setattr(results, "_storages", {})  # a fresh boto3 client inside the mock
    calls: list[int] = []

    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="orch-results")

        @task(result_storage="s3://orch-results/cache", cache_policy=INPUTS)
        def to_s3(x: int) -> int:
            calls.append(x)
            return x * 2

        @flow
        def f() -> int:
            return to_s3(21)

        assert f() == 42
        assert f() == 42
        assert calls == [21]
        runs = read.task_runs()
        ref = next(r.state.data for r in runs if r.state_name == "Completed")
        assert ref["storage"] == "s3://orch-results/cache"
        listed = boto3.client("s3").list_objects_v2(Bucket="orch-results", Prefix="cache/")
        assert [o["Key"] for o in listed["Contents"]] == [f"cache/{ref['key']}"]
