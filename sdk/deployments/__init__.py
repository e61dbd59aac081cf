"""Deployments from the SDK side: ``orch.yaml``, bundling, parameter schemas, and deploying.

::

    from orch.deployments import deploy, to_deployment

    deploy(hello, "nightly", cron="0 2 * * *", timezone="Europe/Paris", parameters={"who": "world"})

Modules: :mod:`.project` (the ``orch.yaml`` model and loader), :mod:`.bundle` (the deterministic zip of the
project), :mod:`.entrypoint` (importing ``file.py:flow`` without running it), :mod:`.schema` (the JSON schema of a
flow's parameters), and the deploy functions below. Storage of bundles is :mod:`orch.storage`.
"""

from __future__ import annotations

from orch.deployments._deploy import DeployResult, deploy, deploy_project, to_deployment
from orch.deployments.bundle import Bundle, build_bundle
from orch.deployments.entrypoint import load_flow
from orch.deployments.project import PROJECT_FILE, DeploymentConfig, ProjectConfig, load_project
from orch.deployments.schema import parameter_schema

__all__ = [
    "PROJECT_FILE",
    "Bundle",
    "DeployResult",
    "DeploymentConfig",
    "ProjectConfig",
    "build_bundle",
    "deploy",
    "deploy_project",
    "load_flow",
    "load_project",
    "parameter_schema",
    "to_deployment",
]
