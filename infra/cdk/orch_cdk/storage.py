"""Where the control plane keeps things outside the database: S3 buckets, SQS work queues and the bootstrap key.

- Code bucket (versioned): content-addressed project bundles under `bundles/`; old versions expire after 30 days.
- Results bucket: persisted task and flow results under `results/`; the retention service deletes them.
- Both: SSE-S3, all public access blocked, TLS-only bucket policy, object ownership enforced (ACLs off).
- One SQS queue and DLQ per configured work queue, named `<prefix>-<queue>` / `<prefix>-<queue>-dlq`, SSE-SQS,
  TLS-only, redrive after 5 receives. The control plane may create more under `<prefix>-` (its IAM allows it);
  queues it creates are not in this stack and outlive it.
- The bootstrap admin key: a generated secret `<prefix>/bootstrap-admin-key`. The control plane stores only its
  hash on first start; an operator reads the value with `aws secretsmanager get-secret-value`.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from orch_cdk.config import StackConfig

__all__ = ["MAX_RECEIVE_COUNT", "Storage", "WorkQueue", "make_queue_pair"]

MAX_RECEIVE_COUNT = 5


class WorkQueue:
    """A queue and its dead-letter queue."""

    def __init__(self, name: str, queue: sqs.Queue, dlq: sqs.Queue) -> None:
        self.name = name
        self.queue = queue
        self.dlq = dlq


def make_queue_pair(
    scope: Construct,
    construct_id: str,
    *,
    queue_name: str,
    visibility_timeout: Duration,
    removal: RemovalPolicy,
    receive_wait: Duration | None = None,
) -> tuple[sqs.Queue, sqs.Queue]:
    """A queue with SSE-SQS, TLS-only access and a DLQ that takes messages after 5 receives."""
    dlq = sqs.Queue(
        scope,
        f"{construct_id}Dlq",
        queue_name=f"{queue_name}-dlq",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
        removal_policy=removal,
    )
    queue = sqs.Queue(
        scope,
        construct_id,
        queue_name=queue_name,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        visibility_timeout=visibility_timeout,
        receive_message_wait_time=receive_wait,
        retention_period=Duration.days(4),
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=MAX_RECEIVE_COUNT),
        removal_policy=removal,
    )
    return queue, dlq


class Storage(Construct):
    """Buckets, work queues and the bootstrap-key secret."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig) -> None:
        super().__init__(scope, construct_id)
        # Retained by default: a stack update or delete should never take users' code and results with it.
        removal = RemovalPolicy.RETAIN if config.deletion_protection else RemovalPolicy.DESTROY
        common = {
            "encryption": s3.BucketEncryption.S3_MANAGED,
            "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
            "enforce_ssl": True,
            "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            "removal_policy": removal,
        }
        self.code_bucket = s3.Bucket(
            self,
            "CodeBucket",
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            **common,  # type: ignore[arg-type]
        )
        self.results_bucket = s3.Bucket(
            self,
            "ResultsBucket",
            lifecycle_rules=[s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(7))],
            **common,  # type: ignore[arg-type]
        )

        self.work_queues: list[WorkQueue] = []
        for index, name in enumerate(config.work_queues):
            queue, dlq = make_queue_pair(
                self,
                f"WorkQueue{index}",
                queue_name=f"{config.queue_prefix}{name}",
                # The same attributes the SQS run-queue adapter gives the queues it creates (control_plane/
                # run_queue/sqs.py): CreateQueue on an existing name fails when attributes differ.
                visibility_timeout=Duration.seconds(60),
                receive_wait=Duration.seconds(20),
                removal=RemovalPolicy.DESTROY,
            )
            self.work_queues.append(WorkQueue(name, queue, dlq))

        self.bootstrap_key = secretsmanager.Secret(
            self,
            "BootstrapAdminKey",
            secret_name=f"{config.prefix}/bootstrap-admin-key",
            description="First orch admin API key; the control plane stores only its hash on first start.",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=48, exclude_punctuation=True, include_space=False
            ),
            # Not retained: only its hash matters and that lives in the database (and its snapshots); a retained
            # secret with this fixed name would block the next deploy.
            removal_policy=RemovalPolicy.DESTROY,
        )
