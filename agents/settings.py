"""Settings of ``orch.agents``: the agent loop and its launchers, read from ``ORCH_*`` environment variables.

The one place the agent package reads its configuration from (the client settings — API URL and key — stay in
``orch.settings``). The ECS values are what ``orch stack outputs`` prints for the CDK/Terraform stack, so an agent
in the stack's ECS service gets them as plain environment variables; a deployment's ``infra_overrides`` win over
them run by run (see ``docs/agents.md``).

List values (subnets, security groups) are comma-separated: ``ORCH_ECS_SUBNETS=subnet-1,subnet-2``.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from orch import __version__
from orch.settings import ProfileBackedSettings

DEFAULT_IMAGE = f"orch/orch:{__version__}"


class AgentSettings(ProfileBackedSettings):
    """Every field can be set as ``ORCH_<FIELD>``, or in the active profile (`orch stack outputs --save` puts the
    ECS settings there); the environment wins."""

    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore", env_ignore_empty=True)

    # -- the agent loop ----------------------------------------------------------------------------------------------
    agent_sqs_wait_seconds: int = Field(
        default=20,
        ge=1,
        le=20,
        description="SQS long-poll wait (20 s, SQS's longest: the fewest empty receives, about 130,000 a month per "
        "queue, $0.05). On SIGTERM the agent waits for receives in flight (at most this long) so that it can hand "
        "their messages back at once instead of leaving them hidden for the visibility timeout: give it a stop "
        "timeout above this (ECS's default 30 s is; for `docker stop` use `-t 25`), or lower it.",
    )
    agent_backoff_max: float = Field(
        default=30.0, gt=0, description="Longest pause between retries while the control plane or SQS is unreachable."
    )
    agent_claim_delay: float = Field(
        default=0.0,
        ge=0,
        description="TEST HOOK: seconds to sleep between receiving a run and claiming it, so tests can kill an "
        "agent in that window. Never set it in production.",
    )
    # -- process launcher --------------------------------------------------------------------------------------------
    process_warm_engine: bool = Field(
        default=True,
        description="Keep one engine process started and its imports done, waiting for the next run (cuts the "
        "pick-up latency by the interpreter start and imports; costs one idle Python process).",
    )
    # -- docker launcher ---------------------------------------------------------------------------------------------
    docker_host: str | None = Field(
        default=None, description="Docker Engine URL (default: DOCKER_HOST or the local socket)."
    )
    docker_image: str = Field(default=DEFAULT_IMAGE, description="Image when the deployment names none.")
    docker_network: str | None = Field(default=None, description="Docker network the run's container joins.")
    docker_auto_remove: bool = Field(
        default=False,
        description="Let the engine remove containers on exit. Off by default: the agent removes each container "
        "itself once it has its exit code and all its logs (auto-removal can race the last log lines).",
    )
    # -- ECS launcher (values from `orch stack outputs`) -----------------------------------------------------------
    ecs_cluster: str | None = Field(default=None, description="ECS cluster name or ARN the run tasks start in.")
    ecs_subnets: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Subnets of the tasks' awsvpc network interface (comma-separated)."
    )
    ecs_security_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Security groups of the tasks (comma-separated)."
    )
    ecs_assign_public_ip: bool = Field(
        default=False, description="Give tasks a public IP (needed in public subnets without a NAT gateway)."
    )
    ecs_task_role_arn: str | None = Field(default=None, description="IAM role the flow code runs as.")
    ecs_execution_role_arn: str | None = Field(
        default=None, description="IAM role ECS uses to pull the image, write logs and read the API key secret."
    )
    ecs_log_group: str = Field(default="/orch/runs", description="CloudWatch Logs group of the tasks (awslogs).")
    ecs_log_stream_prefix: str = Field(default="orch", description="awslogs stream prefix.")
    ecs_api_key_secret_arn: str | None = Field(
        default=None, description="Secrets Manager ARN of the API key the tasks use (injected as an ECS secret)."
    )
    ecs_image: str = Field(default=DEFAULT_IMAGE, description="Image when the deployment names none.")
    ecs_cpu: str = Field(default="512", description="Task CPU units (Fargate sizes: 256, 512, 1024, ...).")
    ecs_memory: str = Field(default="1024", description="Task memory in MiB (must fit the CPU size on Fargate).")
    ecs_poll_interval: float = Field(default=5.0, gt=0, description="Seconds between describe_tasks calls per run.")

    @field_validator("ecs_subnets", "ecs_security_groups", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


@functools.cache
def get_agent_settings() -> AgentSettings:
    return AgentSettings()


def clear_agent_settings_cache() -> None:
    get_agent_settings.cache_clear()
