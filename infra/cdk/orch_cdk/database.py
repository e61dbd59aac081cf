"""PostgreSQL for the control plane: Aurora Serverless v2 (default) or one small RDS instance, optionally behind
RDS Proxy.

- `database=aurora`: Aurora PostgreSQL with one Serverless v2 writer. Minimum capacity 0 ACU turns on auto-pause
  (CDK supports it: `serverless_v2_min_capacity=0` plus `serverless_v2_auto_pause_duration`); the pinned engine
  version 16.9 is one that supports 0 ACU (16.3 and later do).
- `database=instance`: RDS PostgreSQL on db.t4g.micro, 20 GB gp3, single-AZ.

Either way the credentials are a generated Secrets Manager secret (`<prefix>/database`), storage is encrypted,
TLS is forced (`rds.force_ssl=1`), the engine version is pinned to a full version and the PostgreSQL log goes to
a log group with the stack's retention (created here, so no log-retention custom resource is needed).

`rds_proxy=true` puts RDS Proxy in front (TLS required); `db_iam_auth=true` then makes clients authenticate to the
proxy with IAM (`rds-db:connect`) while the proxy itself still uses the secret. IAM auth without the proxy is
refused: on RDS a user granted `rds_iam` can no longer log in with its password, which would lock out the
migrations that use the secret.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from orch_cdk.config import StackConfig
from orch_cdk.network import Network

__all__ = ["AURORA_VERSION", "DATABASE_NAME", "DATABASE_USER", "INSTANCE_VERSION", "Database"]

DATABASE_NAME = "orch"
DATABASE_USER = "orch"
AURORA_VERSION = rds.AuroraPostgresEngineVersion.VER_16_9
INSTANCE_VERSION = rds.PostgresEngineVersion.VER_16_9


class Database(Construct):
    """The database, its secret and the host name the Lambdas connect to."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        network: Network,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        identifier = f"{config.prefix}-db"
        removal = RemovalPolicy.SNAPSHOT if config.deletion_protection else RemovalPolicy.DESTROY
        credentials = rds.Credentials.from_generated_secret(
            DATABASE_USER, secret_name=f"{config.prefix}/database", exclude_characters=" %+~`#$&*()|[]{}:;<>?!'/@\"\\"
        )
        self.cluster: rds.DatabaseCluster | None = None
        self.instance: rds.DatabaseInstance | None = None
        self.proxy: rds.DatabaseProxy | None = None

        if config.database == "aurora":
            # Created before the cluster so RDS writes into a group with our retention, not one it makes forever.
            # Deleted with the stack: a retained group with this fixed name would block the next deploy.
            log_group = logs.LogGroup(
                self,
                "PostgresLog",
                log_group_name=f"/aws/rds/cluster/{identifier}/postgresql",
                retention=log_retention,
                removal_policy=RemovalPolicy.DESTROY,
            )
            auto_pause = config.min_acu == 0
            self.cluster = rds.DatabaseCluster(
                self,
                "Cluster",
                cluster_identifier=identifier,
                engine=rds.DatabaseClusterEngine.aurora_postgres(version=AURORA_VERSION),
                parameter_group=rds.ParameterGroup(
                    self,
                    "ClusterParams",
                    engine=rds.DatabaseClusterEngine.aurora_postgres(version=AURORA_VERSION),
                    parameters={"rds.force_ssl": "1"},
                ),
                writer=rds.ClusterInstance.serverless_v2(
                    "Writer", publicly_accessible=False, auto_minor_version_upgrade=False
                ),
                serverless_v2_min_capacity=config.min_acu,
                serverless_v2_max_capacity=config.aurora_max_acu,
                serverless_v2_auto_pause_duration=(Duration.minutes(config.auto_pause_minutes) if auto_pause else None),
                vpc=network.vpc,
                vpc_subnets=network.private_subnets,
                security_groups=[network.database_sg],
                credentials=credentials,
                default_database_name=DATABASE_NAME,
                storage_encrypted=True,
                # Standard storage: pay per I/O, which is far cheaper than I/O-Optimized for a mostly idle DB.
                storage_type=rds.DBClusterStorageType.AURORA,
                deletion_protection=config.deletion_protection,
                removal_policy=removal,
                backup=rds.BackupProps(retention=Duration.days(config.db_backup_days)),
                cloudwatch_logs_exports=["postgresql"],
            )
            self.cluster.node.add_dependency(log_group)
            self.secret: secretsmanager.ISecret = _required(self.cluster.secret)
            self.endpoint_address = self.cluster.cluster_endpoint.hostname
            proxy_target = rds.ProxyTarget.from_cluster(self.cluster) if config.rds_proxy else None
        else:
            log_group = logs.LogGroup(
                self,
                "PostgresLog",
                log_group_name=f"/aws/rds/instance/{identifier}/postgresql",
                retention=log_retention,
                removal_policy=RemovalPolicy.DESTROY,
            )
            self.instance = rds.DatabaseInstance(
                self,
                "Instance",
                instance_identifier=identifier,
                engine=rds.DatabaseInstanceEngine.postgres(version=INSTANCE_VERSION),
                parameter_group=rds.ParameterGroup(
                    self,
                    "InstanceParams",
                    engine=rds.DatabaseInstanceEngine.postgres(version=INSTANCE_VERSION),
                    parameters={"rds.force_ssl": "1"},
                ),
                instance_type=ec2.InstanceType.of(ec2.InstanceClass.BURSTABLE4_GRAVITON, ec2.InstanceSize.MICRO),
                allocated_storage=20,
                max_allocated_storage=100,
                storage_type=rds.StorageType.GP3,
                storage_encrypted=True,
                multi_az=False,
                publicly_accessible=False,
                auto_minor_version_upgrade=False,
                vpc=network.vpc,
                vpc_subnets=network.private_subnets,
                security_groups=[network.database_sg],
                credentials=credentials,
                database_name=DATABASE_NAME,
                deletion_protection=config.deletion_protection,
                removal_policy=removal,
                backup_retention=Duration.days(config.db_backup_days),
                cloudwatch_logs_exports=["postgresql"],
            )
            self.instance.node.add_dependency(log_group)
            self.secret = _required(self.instance.secret)
            self.endpoint_address = self.instance.db_instance_endpoint_address
            proxy_target = rds.ProxyTarget.from_instance(self.instance) if config.rds_proxy else None

        # Who may open connections to the database port: the Lambdas directly, or only the proxy.
        self.client_sg = network.lambda_sg
        if proxy_target is not None:
            proxy_sg = ec2.SecurityGroup(
                self, "ProxySg", vpc=network.vpc, description="orch RDS Proxy", allow_all_outbound=False
            )
            proxy_sg.add_ingress_rule(network.lambda_sg, ec2.Port.tcp(5432), "PostgreSQL from the orch Lambdas")
            proxy_sg.add_egress_rule(network.database_sg, ec2.Port.tcp(5432), "PostgreSQL to the database")
            network.database_sg.add_ingress_rule(proxy_sg, ec2.Port.tcp(5432), "PostgreSQL from RDS Proxy")
            self.proxy = rds.DatabaseProxy(
                self,
                "Proxy",
                db_proxy_name=f"{config.prefix}-proxy",
                proxy_target=proxy_target,
                secrets=[self.secret],
                vpc=network.vpc,
                vpc_subnets=network.private_subnets,
                security_groups=[proxy_sg],
                require_tls=True,
                iam_auth=config.db_iam_auth,
            )
            self.host = self.proxy.endpoint
        else:
            network.database_sg.add_ingress_rule(
                network.lambda_sg, ec2.Port.tcp(5432), "PostgreSQL from the orch Lambdas"
            )
            self.host = self.endpoint_address

    def grant_connect(self, grantee: iam.IGrantable) -> None:
        """`rds-db:connect` as the orch user through the proxy; a no-op unless IAM auth is on."""
        if self.proxy is not None and self._config.db_iam_auth:
            self.proxy.grant_connect(grantee, DATABASE_USER)


def _required(secret: secretsmanager.ISecret | None) -> secretsmanager.ISecret:
    if secret is None:  # from_generated_secret always yields one; this guards a CDK behaviour change
        raise RuntimeError("CDK created no secret for generated database credentials")
    return secret
