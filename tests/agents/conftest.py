"""Fixtures shared by the agents' tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest


@pytest.fixture
def ecs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An ECS client on moto's in-process ``mock_aws``, with the cluster ``orch`` (credentials and region set, no
    endpoint override: the calls stay in the process)."""
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("ecs", region_name="us-east-1")
        client.create_cluster(clusterName="orch")
        yield client
