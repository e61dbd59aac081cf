"""``orch.testing``: the harness gives a throwaway control plane and puts everything back afterwards."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from orch import flow
from orch.results import S3ResultStorage
from orch.testing import orch_test_harness

pytestmark = pytest.mark.unit


def test_harness_isolates_runs_and_restores_settings(harness: Any, tmp_path: Path) -> None:
    from orch.settings import get_settings

    outer_home = get_settings().home

    @flow
    def hello() -> str:
        return "hi"

    os.environ["ORCH_API_URL"] = "http://127.0.0.1:9"  # must not leak into the harness
    try:
        with orch_test_harness(tmp_path / "inner") as inner:
            assert get_settings().api_url is None
            assert get_settings().home == tmp_path / "inner"
            assert hello() == "hi"
            assert len(inner.client.read_flow_runs()) == 1
            assert (tmp_path / "inner" / "orch.db").exists()
        assert os.environ["ORCH_API_URL"] == "http://127.0.0.1:9"
    finally:
        del os.environ["ORCH_API_URL"]
    from orch.settings import clear_settings_cache

    clear_settings_cache()
    assert get_settings().home == outer_home
    assert harness.client.read_flow_runs() == []  # the inner run went to the inner database only


def test_s3_storage_pickles_without_its_client() -> None:
    storage = S3ResultStorage("bucket", "prefix")
    storage._client = object()
    copy = pickle.loads(pickle.dumps(storage))  # noqa: S301 - our own bytes
    assert (copy.url, copy._client) == ("s3://bucket/prefix", None)
