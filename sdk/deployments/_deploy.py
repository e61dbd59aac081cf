"""Deploying: bundle the project, store the bundle unless its hash is there, register deployments via the API.

Two doors lead here: ``orch deploy`` (:func:`deploy_project`, driven by ``orch.yaml``) and the Python API
(:func:`deploy` / :func:`to_deployment`, Prefect's ``flow.deploy(...)`` / ``flow.to_deployment(...)``). Both build
a :class:`~orch.deployments.project.DeploymentConfig`, import the entrypoint for the flow's name and parameter
schema (:mod:`orch.deployments.entrypoint`; the flow does not run), and upsert ``FLOW/NAME`` with
``POST /api/deployments/``, so deploying twice changes nothing but what changed.
"""

from __future__ import annotations

import dataclasses
import inspect
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orch.control_plane.schemas.deployments import Deployment
from orch.deployments import _client
from orch.deployments.bundle import build_bundle
from orch.deployments.entrypoint import load_flow
from orch.deployments.project import DeploymentConfig, describe_errors, load_project
from orch.deployments.schema import parameter_schema
from orch.exceptions import ConfigurationError
from orch.storage import BundleRef, BundleStorage

__all__ = ["DeployResult", "deploy", "deploy_project", "to_deployment"]

Echo = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class DeployResult:
    deployment: Deployment
    bundle: BundleRef


def _quiet(_: str) -> None:
    return None


def upload_bundle(project_dir: Path, storage: str | None, echo: Echo = _quiet) -> BundleRef:
    """Pack ``project_dir`` and store it unless the same content is stored already."""
    target = BundleStorage(storage)
    with tempfile.TemporaryDirectory(prefix="orch-bundle-") as tmp:
        bundle = build_bundle(project_dir, Path(tmp) / "bundle.zip")
        if target.has(bundle.sha256):
            echo(f"bundle {bundle.sha256[:12]} already stored in {target.url}")
            return BundleRef(bundle.sha256, target.url, f"bundle-{bundle.sha256}.zip", bundle.size, uploaded=False)
        ref = target.put_bundle(bundle.path, sha256=bundle.sha256)
        echo(f"bundle {bundle.sha256[:12]} uploaded to {target.url} ({len(bundle.files)} files, {bundle.size} bytes)")
        return ref


def _body(config: DeploymentConfig, flow: Any, bundle: BundleRef, flow_id: Any, infra: str | None) -> dict[str, Any]:
    path = config.entrypoint.rpartition(":")[0]
    return {
        "flow_id": str(flow_id),
        "name": config.name,
        "description": config.description or getattr(flow, "description", None),
        "version": config.version or getattr(flow, "version", None),
        "tags": list(config.tags),
        "entrypoint": config.entrypoint,
        "path": path if path.endswith(".py") else None,
        "code_bundle": bundle.to_json(),
        "parameters": config.parameters,
        "parameter_schema": parameter_schema(flow.fn),
        "enforce_parameter_schema": config.enforce_parameter_schema,
        "work_queue_name": config.work_queue,
        "infra_type": infra or config.infra.type,
        "infra_overrides": config.infra.overrides,
        "paused": config.paused,
        "max_lateness": config.max_lateness,
        "retries": config.retries if config.retries is not None else (flow.retries or None),
        "retry_delay": config.retry_delay if config.retry_delay is not None else (flow.retry_delay_seconds or None),
        "schedules": config.schedules_for_api(),
    }


def _register(
    client: Any, config: DeploymentConfig, project_dir: Path, bundle: BundleRef, infra: str | None
) -> Deployment:
    flow = load_flow(config.entrypoint, project_dir)
    flow_row = client.create_flow(flow.name)
    return _client.create_deployment(client, _body(config, flow, bundle, flow_row.id, infra))


def deploy_project(
    project_dir: str | Path = ".",
    *,
    name: str | None = None,
    all_: bool = False,
    infra: str | None = None,
    storage: str | None = None,
    client: Any = None,
    echo: Echo = _quiet,
) -> list[DeployResult]:
    """``orch deploy``: the deployments of ``orch.yaml`` in ``project_dir`` (``name``, ``all_`` or the only one)."""
    root = Path(project_dir).resolve()
    project = load_project(root)
    chosen = project.select(name, all_)
    # Import every entrypoint before uploading anything: a typo should cost nothing.
    for config in chosen:
        load_flow(config.entrypoint, root)
    bundle = upload_bundle(root, storage, echo)
    if client is None:
        from orch.client import get_client

        client = get_client()
    results = []
    for config in chosen:
        deployment = _register(client, config, root, bundle, infra)
        count = len(deployment.schedules)
        echo(f"deployment {deployment.full_name} registered ({count} schedule{'' if count == 1 else 's'})")
        results.append(DeployResult(deployment, bundle))
    return results


def to_deployment(
    flow: Any,
    name: str,
    *,
    project_dir: str | Path | None = None,
    entrypoint: str | None = None,
    cron: str | None = None,
    interval: float | None = None,
    rrule: str | None = None,
    timezone: str | None = None,
    schedules: list[dict[str, Any]] | None = None,
    **options: Any,
) -> DeploymentConfig:
    """A deployment of ``flow`` as ``orch.yaml`` would describe it (nothing is uploaded or registered).

    ``entrypoint`` defaults to the flow function's file relative to ``project_dir`` (default: the current folder),
    which must contain it. ``cron``/``interval``/``rrule`` (with ``timezone``) add one schedule, as in Prefect;
    ``schedules`` takes ``orch.yaml`` schedule entries. Other options are ``orch.yaml`` keys (``parameters``,
    ``tags``, ``work_queue``, ``infra``, ``paused``, ``max_lateness``, ``retries``...).
    """
    from pydantic import ValidationError

    root = Path(project_dir or ".").resolve()
    entries = list(schedules or [])
    for key, value in (("cron", cron), ("interval", interval), ("rrule", rrule)):
        if value is not None:
            entries.append({key: value, **({"timezone": timezone} if timezone else {})})
    data = {"name": name, "entrypoint": entrypoint or _entrypoint_of(flow, root), "schedules": entries, **options}
    if "work_queue_name" in data:
        data["work_queue"] = data.pop("work_queue_name")
    try:
        return DeploymentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(describe_errors(exc, source=f"deployment {name!r}")) from None


def _entrypoint_of(flow: Any, root: Path) -> str:
    source = inspect.getsourcefile(flow.fn)
    if source is None:
        raise ConfigurationError(f"Cannot tell which file flow {flow.name!r} is in; pass entrypoint='file.py:fn'.")
    try:
        relative = Path(source).resolve().relative_to(root)
    except ValueError:
        raise ConfigurationError(
            f"Flow {flow.name!r} is defined in {source}, outside the project folder {root}; pass project_dir."
        ) from None
    return f"{relative.as_posix()}:{flow.fn.__name__}"


def deploy(
    flow: Any,
    name: str,
    *,
    project_dir: str | Path | None = None,
    storage: str | None = None,
    infra: str | None = None,
    client: Any = None,
    **options: Any,
) -> Deployment:
    """Bundle the project, store it and register ``FLOW/name`` — ``flow.deploy(name, ...)`` in Prefect's words.

    Options are those of :func:`to_deployment`.
    """
    root = Path(project_dir or ".").resolve()
    config = to_deployment(flow, name, project_dir=root, **options)
    bundle = upload_bundle(root, storage)
    if client is None:
        from orch.client import get_client

        client = get_client()
    flow_row = client.create_flow(flow.name)
    return _client.create_deployment(client, _body(config, flow, bundle, flow_row.id, infra))


def load_and_check(project_dir: str | Path) -> list[DeploymentConfig]:
    """All deployments of a project, with every entrypoint imported (``orch deploy --check``-style validation)."""
    root = Path(project_dir).resolve()
    project = load_project(root)
    for config in project.deployments:
        load_flow(config.entrypoint, root)
    return list(project.deployments)
