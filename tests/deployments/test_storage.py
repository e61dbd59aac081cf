"""Bundle storage: upload skipped when the hash is stored already, in a folder and in S3 (moto's mock_aws)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orch.deployments.bundle import build_bundle
from orch.storage import BundleStorage, fetch_bundle


def _bundle(tmp_path: Path, text: str = "X = 1\n") -> Any:
    root = tmp_path / "project"
    root.mkdir(exist_ok=True)
    (root / "flows.py").write_text(text)
    return build_bundle(root, tmp_path / "bundle.zip")


@pytest.mark.unit
def test_local_upload_once(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    storage = BundleStorage(tmp_path / "store")
    assert not storage.has(bundle.sha256)
    first = storage.put_bundle(bundle.path, sha256=bundle.sha256)
    assert first.uploaded
    assert storage.has(bundle.sha256)
    stored = tmp_path / "store" / first.key
    before = stored.stat().st_mtime_ns
    second = storage.put_bundle(bundle.path)  # the content hash is computed from the zip when not given
    assert not second.uploaded
    assert second.sha256 == bundle.sha256
    assert stored.stat().st_mtime_ns == before


@pytest.mark.unit
def test_default_storage_is_orch_home(orch_home: Path, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    ref = BundleStorage().put_bundle(bundle.path, sha256=bundle.sha256)
    assert (orch_home / "storage" / ref.key).is_file()


@pytest.mark.unit
def test_unsupported_storage_is_refused() -> None:
    from orch.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="only folders and s3://"):
        BundleStorage("gs://bucket/x")


@pytest.fixture
def s3(in_process_aws: None) -> Any:
    import boto3

    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="bundles")
    return client


@pytest.mark.aws
def test_s3_upload_once_and_fetch(s3: Any, tmp_path: Path) -> None:
    from orch import results

    results._storages.clear()  # storages are cached per URL; this test's mock_aws is a fresh account
    bundle = _bundle(tmp_path)
    storage = BundleStorage("s3://bundles/orch/code")
    assert not storage.has(bundle.sha256)
    first = storage.put_bundle(bundle.path, sha256=bundle.sha256)
    assert first.uploaded
    assert first.storage == "s3://bundles/orch/code"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="bundles")["Contents"]]
    assert keys == [f"orch/code/bundle-{bundle.sha256}.zip"]
    etag = s3.head_object(Bucket="bundles", Key=keys[0])["LastModified"]
    second = BundleStorage("s3://bundles/orch/code").put_bundle(bundle.path, sha256=bundle.sha256)
    assert not second.uploaded
    assert s3.head_object(Bucket="bundles", Key=keys[0])["LastModified"] == etag
    dest = fetch_bundle(first.to_json(), tmp_path / "run")
    assert (dest / "flows.py").read_text() == "X = 1\n"
    results._storages.clear()
