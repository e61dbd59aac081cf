"""cdk-nag (AwsSolutions) findings this stack accepts, each with the reason it is accepted.

Findings are fixed in the constructs where that is possible (encryption, TLS-only policies, DLQs, no managed
policies, no action wildcards); what remains is accepted here, per resource and, for IAM5, per wildcard resource,
so a reviewer sees every exception and its reason in one place. A wildcard that is not listed still fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import IConstruct

if TYPE_CHECKING:
    from orch_cdk.stack import OrchControlPlaneStack

__all__ = ["IAM5_WILDCARDS", "add_suppressions"]

# Wildcard resources the roles may carry (cdk-nag IAM5), as regexes over cdk-nag's rendering of the resource,
# each with the reason it is acceptable.
IAM5_WILDCARDS: tuple[tuple[str, str], ...] = (
    (
        r"^Resource::\*$",
        "Only actions without resource-level permissions use '*': the EC2 network-interface actions Lambda "
        "needs in a VPC (as in AWSLambdaVPCAccessExecutionRole), ecr:GetAuthorizationToken, "
        "scheduler:ListSchedules, ecs:RegisterTaskDefinition, and ecs:TagResource limited by ecs:CreateAction to "
        "RunTask and RegisterTaskDefinition.",
    ),
    (
        r"^Resource::<[A-Za-z0-9]+\.Arn>:log-stream:\*$",
        "Log streams are created at run time inside the role's own log group; the group is fixed.",
    ),
    (
        r"^Resource::<Storage(Code|Results)Bucket[A-Za-z0-9]+\.Arn>/(bundles|results)/\*$",
        "Object keys are content hashes or run ids made at run time; access stays inside one key prefix of one bucket.",
    ),
    (
        r"^Resource::arn:<AWS::Partition>:sqs:<AWS::Region>:<AWS::AccountId>:[a-z][a-z0-9-]*-\*$",
        "Work queues are created at run time (one per work queue, named <prefix>-<queue>); the wildcard "
        "covers exactly that name prefix, and the internal ECS-events queue is named outside it.",
    ),
    (
        r"^Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/"
        r"[a-z][a-z0-9-]*-schedules/\*$",
        "One schedule per deployment schedule is created at run time; the wildcard is limited to the "
        "stack's own schedule group.",
    ),
    (
        r"^Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task-definition/\*$",
        "Task definitions are registered at run time per flow image; RunTask is further limited by the "
        "ecs:cluster condition to the stack's cluster.",
    ),
    (
        r"^Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/<RuntimeCluster[A-Za-z0-9]+>/\*$",
        "Task ids exist only at run time; the wildcard is limited to tasks of the stack's cluster (and the "
        "ecs:cluster condition says the same).",
    ),
    (
        r"^Resource::arn:<AWS::Partition>:ecr:<AWS::Region>:<AWS::AccountId>:repository/[a-z][a-z0-9-]*-\*$",
        "Flow images live in ECR repositories the user names <prefix>-*; pulls are limited to those.",
    ),
)


def _suppress(construct: IConstruct, *entries: tuple[str, str]) -> None:
    NagSuppressions.add_resource_suppressions(
        construct,
        [NagPackSuppression(id=rule, reason=reason) for rule, reason in entries],
        apply_to_children=True,
    )


def add_suppressions(stack: OrchControlPlaneStack) -> None:
    """Attach the accepted findings to the stack's constructs."""
    config = stack.config
    functions = stack.functions

    for function in (functions.api, functions.schedule, functions.services, functions.ecs_events):
        _suppress(
            function,
            (
                "AwsSolutions-L1",
                "python3.12 is the runtime the Lambda package is built for (`orch build lambda` targets "
                "manylinux aarch64 / CPython 3.12); moving on is a change to both, not to this stack alone.",
            ),
        )
        role = function.role
        if role is not None:
            _iam5(role)
    _iam5(stack.runtime.execution_role)
    _iam5(stack.runtime.task_role)

    _suppress(
        stack.storage.bootstrap_key,
        (
            "AwsSolutions-SMG4",
            "The bootstrap admin key is read once by an operator and hashed into the database on first "
            "start; rotating the secret would not rotate the key. Replace admin keys through the orch API.",
        ),
    )
    for bucket in (stack.storage.code_bucket, stack.storage.results_bucket):
        _suppress(
            bucket,
            (
                "AwsSolutions-S1",
                "Server access logs would need a third bucket and grow with every bundle and result read; "
                "CloudTrail data events are the audit option if needed. Access is only through the roles "
                "in this stack; public access is blocked and TLS is enforced.",
            ),
        )
    _suppress(
        stack.network.vpc,
        (
            "AwsSolutions-VPC7",
            "Flow logs bill per GB ingested; nothing in this VPC accepts inbound connections from outside "
            "(no load balancer, tasks have no ingress rules). Add a flow log when an audit requires one.",
        ),
    )
    if not config.container_insights:
        _suppress(
            stack.runtime.cluster,
            (
                "AwsSolutions-ECS4",
                "Container Insights bills custom metrics per task; off by default for cost, "
                "switch on with -c container_insights=true.",
            ),
        )

    database = stack.database.cluster or stack.database.instance
    if database is not None:
        entries: list[tuple[str, str]] = []
        if not config.db_iam_auth:
            entries.append(
                (
                    "AwsSolutions-RDS6",
                    "The database accepts only the generated-secret user over TLS from the Lambdas' (or the "
                    "proxy's) security group in isolated subnets. IAM auth is offered between the Lambdas and "
                    "RDS Proxy (-c rds_proxy=true -c db_iam_auth=true); on the database itself it would lock "
                    "the secret's password login out.",
                )
            )
        if config.database == "instance":
            entries.append(
                (
                    "AwsSolutions-RDS3",
                    "The small-instance option is the cheap single-AZ choice by design; use the default "
                    "Aurora option or change multi_az for a standby.",
                )
            )
            entries.append(
                (
                    "AwsSolutions-RDS11",
                    "The default port 5432 is reachable only from the orch security groups in isolated "
                    "subnets; another port would hide nothing from a client that is already inside them.",
                )
            )
        entries.append(
            (
                # The generated credentials secret is a child of the cluster / instance construct.
                "AwsSolutions-SMG4",
                "Rotating the database password needs a rotation Lambda with access to the database and to "
                "Secrets Manager; the Lambdas read the secret at cold start, so rotation can be added without "
                "changes to them. Not deployed by default to keep the stack small; see docs/aws.md.",
            )
        )
        if not config.deletion_protection:
            entries.append(
                (
                    "AwsSolutions-RDS10",
                    "Deletion protection was switched off on purpose with -c deletion_protection=false.",
                )
            )
        _suppress(database, *entries)

    http_api = functions.node.try_find_child("HttpApi")
    if http_api is not None:
        _suppress(
            http_api,
            (
                "AwsSolutions-APIG1",
                "The API Lambda logs every request itself (Powertools); stage access logs would duplicate them.",
            ),
            (
                "AwsSolutions-APIG4",
                "Requests are authenticated by orch API keys inside the API (ORCH_AUTH=on); an API Gateway "
                "authorizer would need a second copy of the key store.",
            ),
        )


def _iam5(construct: IConstruct) -> None:
    NagSuppressions.add_resource_suppressions(
        construct,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5", reason=reason, applies_to=[RegexAppliesTo(regex=f"/{pattern}/g")]
            )
            for pattern, reason in IAM5_WILDCARDS
        ],
        apply_to_children=True,
    )
