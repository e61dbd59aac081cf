"""Fixtures shared by the agents' tests."""

from __future__ import annotations

from typing import Any

import boto3
import pytest


@pytest.fixture
def ecs(in_process_aws: None) -> Any:
    """An ECS client on moto's in-process ``mock_aws`` (``tests/plugins/aws.py``), with the cluster ``orch``."""
    client = boto3.client("ecs", region_name="us-east-1")
    client.create_cluster(clusterName="orch")
    return client
