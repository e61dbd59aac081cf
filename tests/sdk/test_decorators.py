"""``@flow`` and ``@task``: both forms, kept metadata, misuse refused at decoration time, ``with_options``."""

from __future__ import annotations

import datetime as dt
import inspect

import pytest

from orch import Flow, Task, flow, task
from orch.cache_policies import INPUTS
from orch.task_runners import ThreadPoolTaskRunner
from orch.tasks import exponential_backoff

pytestmark = pytest.mark.unit


def add(x: int, y: int = 2) -> int:
    """Add two numbers."""
    return x + y


def test_both_forms_keep_signature_and_docstring() -> None:
    for made in (task(add), task(name="adder")(add), flow(add), flow(name="adding")(add)):
        assert isinstance(made, Task | Flow)
        assert made.__doc__ == "Add two numbers."
        assert made.__name__ == "add"
        assert list(inspect.signature(made).parameters) == ["x", "y"]
    assert task(add).name == "add"
    assert task(name="adder")(add).name == "adder"
    assert task(add, name="direct").name == "direct"
    assert flow(add, retries=1).retries == 1
    assert flow(add).name == "add"
    assert flow(lambda: 1).name == "<lambda>"
    assert flow(add).description == "Add two numbers."


def test_flow_name_defaults_to_function_name_with_dashes() -> None:
    def my_etl_job() -> None: ...

    assert flow(my_etl_job).name == "my-etl-job"


@pytest.mark.parametrize(
    ("decorate", "message"),
    [
        (lambda: flow(type("C", (), {})), "decorates functions, not classes"),
        (lambda: task(type("C", (), {})), "decorates functions, not classes"),
        (lambda: task(retries=-1)(add), "retries must be"),
        (lambda: flow(retries=1.5)(add), "retries must be"),
        (lambda: task(retry_delay_seconds=-3)(add), "retry_delay_seconds"),
        (lambda: task(retry_delay_seconds=[1, "x"])(add), "retry_delay_seconds"),
        (lambda: flow(retry_delay_seconds=[1, 2])(add), "one number of seconds"),
        (lambda: task(timeout_seconds=0)(add), "timeout_seconds"),
        (lambda: task(result_serializer="yaml")(add), "Unknown result serializer"),
        (lambda: task(result_storage="ftp://host/x")(add), "only folders and s3"),
        (lambda: task(result_storage="s3://")(add), "names no bucket"),
        (lambda: task(cache_policy="inputs")(add), "cache_policy must be"),
        (lambda: task(cache_expiration=60)(add), "timedelta"),
        (lambda: task(on_failure=[1])(add), "not callable"),
        (lambda: task(retry_jitter_factor=-1)(add), "retry_jitter_factor"),
        (lambda: flow(task_runner=ThreadPoolTaskRunner)(add), "instance"),
        (lambda: flow(name="")(add), "flow name"),
    ],
)
def test_misuse_fails_at_decoration_time(decorate: object, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        decorate()  # type: ignore[operator]


def test_with_options_copies_and_overrides() -> None:
    base = task(retries=1, tags=["a"], cache_policy=INPUTS)(add)
    other = base.with_options(name="other", retries=3)
    assert (other.name, other.retries, other.tags, other.cache_policy) == ("other", 3, frozenset({"a"}), INPUTS)
    assert (base.name, base.retries) == ("add", 1)
    f = flow(retries=2)(add).with_options(name="renamed", timeout_seconds=5)
    assert (f.name, f.retries, f.timeout_seconds) == ("renamed", 2, 5)
    with pytest.raises(TypeError, match="unknown options: nope"):
        base.with_options(nope=1)


def test_exponential_backoff() -> None:
    t = task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2))(add)
    assert [t.retry_delay_for(i) for i in (1, 2, 3)] == [2.0, 4.0, 8.0]
    listed = task(retries=3, retry_delay_seconds=[1, 5])(add)
    assert [listed.retry_delay_for(i) for i in (1, 2, 3)] == [1.0, 5.0, 5.0]
    jittered = task(retries=1, retry_delay_seconds=10, retry_jitter_factor=0.5)(add)
    assert all(10 <= jittered.retry_delay_for(1) <= 15 for _ in range(50))


def test_caching_is_opt_in_as_in_prefect() -> None:
    assert task(add).caching is False
    assert task(add).persist_result is None
    cached = task(cache_policy=INPUTS)(add)
    assert cached.caching
    assert cached.persist_result is True
    assert task(cache_key_fn=lambda ctx, p: "k")(add).caching
    assert task(persist_result=True)(add).caching  # the DEFAULT policy applies once results are persisted
    assert not task(persist_result=True, cache_policy=None)(add).caching
    assert task(cache_expiration=dt.timedelta(seconds=1), cache_policy=INPUTS)(add).cache_expiration


def test_calling_a_task_outside_a_flow_just_runs_it() -> None:
    assert task(add)(1, y=5) == 6
