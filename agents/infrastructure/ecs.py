"""The ECS launcher: each run as one Fargate task running ``python -m orch.engine RUN_ID``.

Per deployment there is one task definition family, ``orch-<flow>-<deployment>``. Its content (image, cpu/memory,
roles, logging, the API key secret, static env) is hashed; the hash is a tag on the revision
(``orch:definition-hash``). A launch reuses the family's latest revision while the hash matches and registers a new
revision when the definition changed — so a redeploy with a new image registers once, not once per run.

``run_task`` starts the task with awsvpc networking (``ORCH_ECS_SUBNETS``, ``ORCH_ECS_SECURITY_GROUPS``,
``assignPublicIp``), the run's variables as container overrides (``ORCH_FLOW_RUN_ID``, ``ORCH_API_URL``), the run id
as ``startedBy`` and as the ``orch:flow-run-id`` tag — the control plane's ECS event handler maps a stopped task
back to its run with it. The API key never travels in plain environment: the container gets it as an ECS
*secret* (``valueFrom`` the Secrets Manager ARN ``ORCH_ECS_API_KEY_SECRET_ARN``), resolved by ECS with the
execution role. Logs go to CloudWatch (``awslogs``, group ``ORCH_ECS_LOG_GROUP``, stream prefix).

Watching is ``describe_tasks`` polling (at most every ``ORCH_ECS_POLL_INTERVAL`` seconds per task); a STOPPED task
gives its container's exit code and ECS's stop code and reason (``TaskFailedToStart: CannotPullContainerError...``)
as the ``ExitStatus``. Cancellation is ``stop_task``.

Settings: ``orch.agents.settings.AgentSettings`` (``ORCH_ECS_*``), overridden per deployment by ``infra_overrides``
keys ``image``, ``cpu``, ``memory``, ``cluster``, ``subnets``, ``security_groups``, ``assign_public_ip``,
``task_role_arn``, ``execution_role_arn``, ``log_group``, ``env``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import threading
import time
from typing import Any

from orch.agents.infrastructure import ExitStatus, LaunchRequest
from orch.agents.settings import AgentSettings, get_agent_settings
from orch.exceptions import InfrastructureError

logger = logging.getLogger("orch.agents.ecs")

CONTAINER = "orch"
HASH_TAG = "orch:definition-hash"
RUN_TAG = "orch:flow-run-id"
# The run's own variables; everything else in LaunchRequest.env stays on the agent's host.
RUN_ENV = ("ORCH_FLOW_RUN_ID", "ORCH_API_URL", "ORCH_LOG_TO_CONSOLE")


@dataclasses.dataclass
class EcsHandle:
    ident: str  # the task ARN
    cluster: str
    run_id: str
    checked_at: float = 0.0


class EcsInfrastructure:
    kind = "ecs"

    def __init__(self, *, settings: AgentSettings | None = None, ecs_client: Any = None, **_: Any) -> None:
        self.settings = settings or get_agent_settings()
        if ecs_client is None:
            import boto3

            ecs_client = boto3.client("ecs")
        self.ecs = ecs_client
        self._definitions: dict[str, str] = {}  # content hash -> task definition ARN
        self._lock = threading.Lock()

    # -- the task definition -----------------------------------------------------------------------------------------

    def family(self, request: LaunchRequest) -> str:
        deployment = request.deployment or {}
        name = f"{deployment.get('flow_name') or 'flow'}-{deployment.get('name') or 'run'}"
        return ("orch-" + re.sub(r"[^A-Za-z0-9_-]", "-", name))[:255]

    def task_definition(self, request: LaunchRequest) -> dict[str, Any]:
        """The ``register_task_definition`` arguments for the request's deployment (without tags)."""
        s, o = self.settings, request.overrides
        cpu, memory = str(o.get("cpu") or s.ecs_cpu), str(o.get("memory") or s.ecs_memory)
        container: dict[str, Any] = {
            "name": CONTAINER,
            "image": str(o.get("image") or s.ecs_image),
            "essential": True,
            "command": ["python", "-m", "orch.engine"],
            # container memory (= the task's) keeps the definition valid for EC2 capacity too
            "memory": int(memory),
            "environment": [{"name": k, "value": str(v)} for k, v in sorted((o.get("env") or {}).items())],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": str(o.get("log_group") or s.ecs_log_group),
                    "awslogs-region": self.ecs.meta.region_name,
                    "awslogs-stream-prefix": s.ecs_log_stream_prefix,
                    "awslogs-create-group": "true",
                },
            },
        }
        secret = o.get("api_key_secret_arn") or s.ecs_api_key_secret_arn
        if secret:
            container["secrets"] = [{"name": "ORCH_API_KEY", "valueFrom": str(secret)}]
        definition: dict[str, Any] = {
            "family": self.family(request),
            "requiresCompatibilities": ["FARGATE"],
            "networkMode": "awsvpc",
            "cpu": cpu,
            "memory": memory,
            "containerDefinitions": [container],
        }
        execution_role = o.get("execution_role_arn") or s.ecs_execution_role_arn
        task_role = o.get("task_role_arn") or s.ecs_task_role_arn
        if execution_role:
            definition["executionRoleArn"] = str(execution_role)
        if task_role:
            definition["taskRoleArn"] = str(task_role)
        return definition

    @staticmethod
    def definition_hash(definition: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:32]

    def ensure_task_definition(self, request: LaunchRequest) -> str:
        """The ARN of an ACTIVE revision with exactly this content; registers one when there is none."""
        from botocore.exceptions import ClientError

        definition = self.task_definition(request)
        digest = self.definition_hash(definition)
        with self._lock:
            if digest in self._definitions:
                return self._definitions[digest]
            try:
                arn = self._latest_matching(definition["family"], digest)
                if arn is None:
                    arn = self.ecs.register_task_definition(**definition, tags=[{"key": HASH_TAG, "value": digest}])[
                        "taskDefinition"
                    ]["taskDefinitionArn"]
                    logger.info("registered task definition %s", arn)
            except ClientError as exc:
                raise InfrastructureError(f"ECS could not register the task definition: {_explain(exc)}") from None
            self._definitions[digest] = arn
            return arn

    def _latest_matching(self, family: str, digest: str) -> str | None:
        arns = self.ecs.list_task_definitions(familyPrefix=family, status="ACTIVE", sort="DESC", maxResults=1)[
            "taskDefinitionArns"
        ]
        if not arns:
            return None
        described = self.ecs.describe_task_definition(taskDefinition=arns[0], include=["TAGS"])
        tags = {t["key"]: t["value"] for t in described.get("tags", [])}
        if described["taskDefinition"].get("family") == family and tags.get(HASH_TAG) == digest:
            return str(arns[0])
        return None

    # -- run, watch, stop --------------------------------------------------------------------------------------------

    def run_task_request(self, request: LaunchRequest, task_definition_arn: str) -> dict[str, Any]:
        """The ``run_task`` arguments for one run."""
        s, o = self.settings, request.overrides
        cluster = o.get("cluster") or s.ecs_cluster
        if not cluster:
            raise InfrastructureError(
                "No ECS cluster: set ORCH_ECS_CLUSTER or the deployment's infra_overrides.cluster."
            )
        subnets = list(o.get("subnets") or s.ecs_subnets)
        if not subnets:
            raise InfrastructureError("No subnets for the Fargate task: set ORCH_ECS_SUBNETS (comma-separated).")
        if request.env.get("ORCH_API_KEY") and not (o.get("api_key_secret_arn") or s.ecs_api_key_secret_arn):
            raise InfrastructureError(
                "The agent uses an API key but ORCH_ECS_API_KEY_SECRET_ARN is not set: ECS tasks get the key only "
                "as a Secrets Manager secret, never as plain environment."
            )
        public = o.get("assign_public_ip", s.ecs_assign_public_ip)
        env = [{"name": k, "value": request.env[k]} for k in RUN_ENV if k in request.env]
        return {
            "cluster": str(cluster),
            "taskDefinition": task_definition_arn,
            "launchType": "FARGATE",
            "count": 1,
            "startedBy": request.run_id[:36],
            "tags": [{"key": RUN_TAG, "value": request.run_id}],
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": subnets,
                    "securityGroups": list(o.get("security_groups") or s.ecs_security_groups),
                    "assignPublicIp": "ENABLED" if public else "DISABLED",
                }
            },
            "overrides": {
                "containerOverrides": [
                    {"name": CONTAINER, "command": list(request.command), "environment": env},
                ]
            },
        }

    def launch(self, request: LaunchRequest) -> EcsHandle:
        from botocore.exceptions import ClientError

        arn = self.ensure_task_definition(request)
        args = self.run_task_request(request, arn)
        try:
            answer = self.ecs.run_task(**args)
        except ClientError as exc:
            raise InfrastructureError(f"ECS could not run the task: {_explain(exc)}") from None
        tasks = answer.get("tasks") or []
        if not tasks:
            reasons = "; ".join(
                f"{f.get('reason')}" + (f" ({f['detail']})" if f.get("detail") else "")
                for f in answer.get("failures") or []
            )
            raise InfrastructureError(f"ECS did not start the task: {reasons or 'no task and no reason given'}")
        return EcsHandle(str(tasks[0]["taskArn"]), args["cluster"], request.run_id)

    def poll(self, handle: EcsHandle) -> ExitStatus | None:
        from botocore.exceptions import ClientError

        now = time.monotonic()
        if now - handle.checked_at < self.settings.ecs_poll_interval:
            return None
        handle.checked_at = now
        try:
            answer = self.ecs.describe_tasks(cluster=handle.cluster, tasks=[handle.ident])
        except ClientError as exc:
            logger.warning("describe_tasks failed for %s: %s", handle.ident, _explain(exc))
            return None
        if not answer.get("tasks"):
            return ExitStatus(None, f"ECS task {handle.ident} no longer exists")
        return exit_status(answer["tasks"][0])

    def kill(self, handle: EcsHandle, grace_seconds: float = 10.0) -> None:
        from botocore.exceptions import ClientError

        # ECS sends SIGTERM, then SIGKILL after the container's stopTimeout (30 s by default on Fargate).
        try:
            self.ecs.stop_task(cluster=handle.cluster, task=handle.ident, reason="Cancelled in orch")
        except ClientError as exc:
            logger.warning("could not stop ECS task %s: %s", handle.ident, _explain(exc))

    def close(self) -> None:
        return None


def exit_status(task: dict[str, Any]) -> ExitStatus | None:
    """``None`` while the task has not stopped; else its container's exit code with ECS's stop reason."""
    if task.get("lastStatus") != "STOPPED":
        return None
    container = next((c for c in task.get("containers") or [] if c.get("name") == CONTAINER), None) or {}
    code = container.get("exitCode")
    parts = [f"ECS task stopped ({task.get('stopCode') or 'unknown stop code'})"]
    if task.get("stoppedReason"):
        parts.append(str(task["stoppedReason"]))
    if container.get("reason"):
        parts.append(f"container: {container['reason']}")
    parts.append(f"exit code {code}" if code is not None else "no exit code")
    return ExitStatus(int(code) if code is not None else None, ": ".join(parts[:2]) + "; " + "; ".join(parts[2:]))


def _explain(exc: Any) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', exc)}"
