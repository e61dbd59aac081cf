"""Small builders for the least-privilege statements the roles share.

CDK's `grant_*` helpers add wildcard actions (`s3:GetObject*`, `s3:List*`, `s3:Abort*`) and extra ones
(`secretsmanager:DescribeSecret`); the stack's rule is that every action is named, so the statements are written
here instead.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager

__all__ = ["grant_objects", "grant_secret_value"]


def grant_objects(role: iam.IRole, bucket: s3.IBucket, key_prefix: str, *, write: bool) -> None:
    """Read (and with `write` put and delete) objects under `key_prefix` of `bucket`, and list that prefix."""
    actions = ["s3:GetObject"]
    if write:
        actions += ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=actions, resources=[bucket.arn_for_objects(f"{key_prefix}/*")])
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{key_prefix}/*"]}},
        )
    )


def grant_secret_value(role: iam.IRole, *secrets: secretsmanager.ISecret) -> None:
    """`secretsmanager:GetSecretValue` on exactly these secrets."""
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[s.secret_arn for s in secrets])
    )
