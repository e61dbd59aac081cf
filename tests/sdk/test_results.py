"""Result storage: local folders and S3 (moto's in-process ``mock_aws``), serializers, references."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from orch import results
from orch.results import LocalResultStorage, ResultOptions, S3ResultStorage, resolve_storage

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("serializer", ["json", "pickle", "cloudpickle"])
def test_local_round_trip_and_reference(tmp_path: Path, serializer: str) -> None:
    options = ResultOptions(True, tmp_path / "store", serializer)
    ref = results.persist(options, "key1", {"a": [1, 2]})
    assert ref == {"storage": (tmp_path / "store").resolve().as_uri(), "key": "key1", "serializer": serializer}
    assert results.load_reference(ref) == {"a": [1, 2]}
    assert results.lookup(options, "key1")[:2] == (True, {"a": [1, 2]})
    assert results.lookup(options, "missing") == (False, None, None)


def test_expired_entries_are_not_found(tmp_path: Path) -> None:
    options = ResultOptions(True, tmp_path, "json")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    results.persist(options, "old", 1, expiration=past)
    assert results.lookup(options, "old")[0] is False


def test_default_storage_is_orch_home_storage(harness: Any) -> None:
    storage = resolve_storage(None)
    assert isinstance(storage, LocalResultStorage)
    assert storage.path == (harness.home / "storage").resolve()


def test_keys_cannot_escape_the_folder(tmp_path: Path) -> None:
    storage = LocalResultStorage(tmp_path / "s")
    storage.write("../evil", b"x")
    assert not (tmp_path / "evil").exists()
    assert storage.read("../evil") == b"x"


@pytest.mark.aws
def test_s3_round_trip_with_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's ``mock_aws`` patches botocore in-process: the real boto3 client code runs against moto's S3."""
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="results")
        storage = S3ResultStorage("results", "runs/")
        options = ResultOptions(True, storage, "pickle")
        ref = results.persist(options, "abc", [1, 2, 3])
        assert ref["storage"] == "s3://results/runs"
        body = boto3.client("s3").get_object(Bucket="results", Key="runs/abc")["Body"].read()
        assert body.startswith(b'{"serializer": "pickle"')
        assert results.lookup(options, "abc")[:2] == (True, [1, 2, 3])
        assert results.lookup(options, "nope")[0] is False
