"""`OrchControlPlane`: orch's serverless control plane in one CloudFormation stack.

The stack wires five constructs (network, database, storage, runtime, functions) and publishes the outputs that
`orch stack outputs` reads. Output names are a contract: rename one and the CLI stops finding it.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from orch_cdk.config import LOG_RETENTION_DAYS, StackConfig
from orch_cdk.database import Database
from orch_cdk.functions import Functions
from orch_cdk.nag import add_suppressions
from orch_cdk.network import Network
from orch_cdk.runtime import Runtime
from orch_cdk.storage import Storage

__all__ = ["OUTPUT_NAMES", "STACK_NAME", "OrchControlPlaneStack"]

STACK_NAME = "OrchControlPlane"

# Every output the stack publishes; tests pin this list.
OUTPUT_NAMES = (
    "ApiUrl",
    "Region",
    "CodeBucket",
    "ResultsBucket",
    "StorageUrl",
    "ResultsStorageUrl",
    "ClusterArn",
    "ClusterName",
    "Subnets",
    "SecurityGroup",
    "AssignPublicIp",
    "SchedulerGroup",
    "SchedulerRoleArn",
    "ScheduleFunctionArn",
    "DatabaseSecretArn",
    "DatabaseHost",
    "DatabaseName",
    "BootstrapKeySecretArn",
    "TaskRoleArn",
    "ExecutionRoleArn",
    "LogGroup",
    "SqsQueuePrefix",
    "WorkQueueUrls",
    "EcsEventsQueueUrl",
)


class OrchControlPlaneStack(Stack):
    """The whole control plane; `config` decides the variant, `code` is the Lambda package."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StackConfig, code: lambda_.Code, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, description="orch control plane (serverless)", **kwargs)
        # DBProxyTargetGroup has no Tags property in CloudFormation although CDK treats it as taggable.
        Tags.of(self).add("orch:stack", config.prefix, exclude_resource_types=["AWS::RDS::DBProxyTargetGroup"])
        retention = _retention(config.log_retention_days)

        network = Network(self, "Network", config=config)
        database = Database(self, "Database", config=config, network=network, log_retention=retention)
        storage = Storage(self, "Storage", config=config)
        runtime = Runtime(self, "Runtime", config=config, network=network, storage=storage, log_retention=retention)
        functions = Functions(
            self,
            "Functions",
            config=config,
            code=code,
            network=network,
            database=database,
            storage=storage,
            runtime=runtime,
            log_retention=retention,
        )
        self.config = config
        self.network = network
        self.database = database
        self.storage = storage
        self.runtime = runtime
        self.functions = functions

        env = functions.environment
        outputs: dict[str, tuple[str, str]] = {
            "ApiUrl": (functions.api_url, "orch API base URL (set ORCH_API_URL to it)"),
            "Region": (self.region, "Region of the stack"),
            "CodeBucket": (storage.code_bucket.bucket_name, "S3 bucket for code bundles"),
            "ResultsBucket": (storage.results_bucket.bucket_name, "S3 bucket for persisted results"),
            "StorageUrl": (env["ORCH_STORAGE_URL"], "ORCH_STORAGE_URL"),
            "ResultsStorageUrl": (env["ORCH_RESULTS_STORAGE_URL"], "ORCH_RESULTS_STORAGE_URL"),
            "ClusterArn": (runtime.cluster.cluster_arn, "ECS cluster for flow runs"),
            "ClusterName": (runtime.cluster.cluster_name, "ECS cluster name"),
            "Subnets": (env["ORCH_ECS_SUBNETS"], "Comma-separated subnets for flow-run tasks"),
            "SecurityGroup": (env["ORCH_ECS_SECURITY_GROUPS"], "Security group for flow-run tasks"),
            "AssignPublicIp": (
                "ENABLED" if env["ORCH_ECS_ASSIGN_PUBLIC_IP"] == "on" else "DISABLED",
                "assignPublicIp for flow-run tasks",
            ),
            "SchedulerGroup": (env["ORCH_SCHEDULER_GROUP_NAME"], "EventBridge Scheduler schedule group"),
            "SchedulerRoleArn": (env["ORCH_SCHEDULER_ROLE_ARN"], "Role schedules use to invoke the schedule function"),
            "ScheduleFunctionArn": (env["ORCH_SCHEDULER_TARGET_ARN"], "Target of every schedule"),
            "DatabaseSecretArn": (database.secret.secret_arn, "Secrets Manager secret with the DB credentials"),
            "DatabaseHost": (database.host, "Host the control plane connects to (RDS Proxy if enabled)"),
            "DatabaseName": (env["ORCH_DATABASE_NAME"], "PostgreSQL database name"),
            "BootstrapKeySecretArn": (storage.bootstrap_key.secret_arn, "Secret holding the first admin API key"),
            "TaskRoleArn": (runtime.task_role.role_arn, "ECS task role for flow runs"),
            "ExecutionRoleArn": (runtime.execution_role.role_arn, "ECS task execution role for flow runs"),
            "LogGroup": (runtime.log_group.log_group_name, "CloudWatch log group for flow runs"),
            "SqsQueuePrefix": (config.queue_prefix, "Prefix of every work-queue name"),
            "WorkQueueUrls": (
                self.to_json_string({wq.name: wq.queue.queue_url for wq in storage.work_queues}),
                "JSON object: work-queue name -> SQS queue URL",
            ),
            "EcsEventsQueueUrl": (functions.ecs_events_queue.queue_url, "SQS queue of ECS task state changes"),
        }
        if tuple(outputs) != OUTPUT_NAMES:  # keeps the published list and the contract in one order
            raise RuntimeError("stack outputs and OUTPUT_NAMES disagree")
        for name, (value, description) in outputs.items():
            # Created on the stack itself so the logical id is exactly the name.
            CfnOutput(self, name, value=value, description=description)

        add_suppressions(self)


def _retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for `days`; CDK's enum lists the allowed periods in the same ascending order."""
    finite = [member for member in logs.RetentionDays if member is not logs.RetentionDays.INFINITE]
    return dict(zip(LOG_RETENTION_DAYS, finite, strict=True))[days]
