"""Where flow runs execute: an ECS cluster for Fargate tasks, their two roles and their log group.

The stack does not define a task definition: the ECS launcher registers one per flow image and passes these roles,
subnets and security group when it calls RunTask. What the roles allow:

- execution role (used by ECS to start the task): write to the flow-run log group; pull images from ECR
  repositories named `<prefix>-*` (public images need nothing).
- task role (used by the flow code): read bundles from the code bucket, read and write the results bucket.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from orch_cdk.config import StackConfig
from orch_cdk.network import Network
from orch_cdk.policies import grant_objects
from orch_cdk.storage import Storage

__all__ = ["Runtime"]


class Runtime(Construct):
    """ECS cluster, task roles and the flow-run log group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        network: Network,
        storage: Storage,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            cluster_name=config.prefix,
            vpc=network.vpc,
            enable_fargate_capacity_providers=True,
            container_insights_v2=(
                ecs.ContainerInsights.ENABLED if config.container_insights else ecs.ContainerInsights.DISABLED
            ),
        )
        self.log_group = logs.LogGroup(
            self,
            "FlowRunLogs",
            log_group_name=f"/orch/{config.prefix}/flow-runs",
            retention=log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )

        ecs_principal = iam.ServicePrincipal(
            "ecs-tasks.amazonaws.com",
            # Only tasks of this account may assume the roles (confused-deputy guard).
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        )
        self.execution_role = iam.Role(
            self,
            "TaskExecutionRole",
            assumed_by=ecs_principal,
            description="ECS starts orch flow-run tasks with this role: logs and image pulls.",
        )
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[f"{self.log_group.log_group_arn}:log-stream:*"],
            )
        )
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                # GetAuthorizationToken has no resource-level permissions.
                actions=["ecr:GetAuthorizationToken"],
                resources=["*"],
            )
        )
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                resources=[stack.format_arn(service="ecr", resource="repository", resource_name=f"{config.prefix}-*")],
            )
        )

        self.task_role = iam.Role(
            self,
            "TaskRole",
            assumed_by=ecs_principal,
            description="orch flow-run code runs with this role: bundles and results in S3.",
        )
        grant_objects(self.task_role, storage.code_bucket, "bundles", write=False)
        grant_objects(self.task_role, storage.results_bucket, "results", write=True)
