"""The VPC: public subnets for flow-run tasks, isolated subnets for the database and the Lambdas.

The cheap default has no NAT gateway (about $33 a month each before traffic). Fargate tasks get a public IP in a
public subnet and reach the API, S3 and image registries through the internet gateway. The Lambdas sit in isolated
subnets next to the database, so they reach AWS APIs through VPC endpoints: a free S3 gateway endpoint and
interface endpoints for Secrets Manager, SQS, EventBridge Scheduler and ECS, placed in `endpoint_azs` zones
(one by default; each endpoint costs per zone-hour). With `nat_gateways>=1` the Lambda subnets get a route to the
NAT instead and the interface endpoints become optional.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from orch_cdk.config import StackConfig

__all__ = ["INTERFACE_ENDPOINTS", "Network"]

# Service names of the interface endpoints the Lambdas need when they have no NAT: what each handler calls.
INTERFACE_ENDPOINTS: dict[str, str] = {
    "SecretsManager": "secretsmanager",  # database credentials, bootstrap key
    "Sqs": "sqs",  # run queues
    "Scheduler": "scheduler",  # one schedule per deployment schedule
    "Ecs": "ecs",  # RunTask / StopTask / DescribeTasks for flow runs
}


class Network(Construct):
    """VPC, security groups and endpoints; exposes what the other constructs attach to."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig) -> None:
        super().__init__(scope, construct_id)
        private_type = ec2.SubnetType.PRIVATE_WITH_EGRESS if config.nat_gateways else ec2.SubnetType.PRIVATE_ISOLATED
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.42.0.0/16"),
            # RDS wants a subnet group that spans two zones, even for a single writer.
            max_azs=2,
            nat_gateways=config.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=20),
                ec2.SubnetConfiguration(name="private", subnet_type=private_type, cidr_mask=20),
            ],
            # Stripping the default security group's rules takes a custom-resource Lambda; nothing here uses
            # that group (every resource gets its own), so the extra function is not worth deploying.
            restrict_default_security_group=False,
        )
        self.private_subnets = ec2.SubnetSelection(subnet_type=private_type)
        self.public_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)

        self.lambda_sg = ec2.SecurityGroup(
            self, "LambdaSg", vpc=self.vpc, description="orch control-plane Lambdas", allow_all_outbound=True
        )
        self.database_sg = ec2.SecurityGroup(
            self, "DatabaseSg", vpc=self.vpc, description="orch PostgreSQL", allow_all_outbound=False
        )
        # Flow-run tasks: nothing connects in; they call out to the API, S3 and registries.
        self.tasks_sg = ec2.SecurityGroup(
            self, "TasksSg", vpc=self.vpc, description="orch flow-run tasks (Fargate)", allow_all_outbound=True
        )

        # S3 gateway endpoints are free; always worth having for the Lambdas' bundle and result traffic.
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        self.endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        if config.use_vpc_endpoints:
            endpoint_sg = ec2.SecurityGroup(
                self, "EndpointSg", vpc=self.vpc, description="orch interface endpoints", allow_all_outbound=False
            )
            endpoint_sg.add_ingress_rule(self.lambda_sg, ec2.Port.tcp(443), "HTTPS from the orch Lambdas")
            # One subnet per zone, first `endpoint_azs` zones: Lambdas in the other zone reach the endpoint across
            # zones (private DNS resolves to its ENIs), which costs $0.01/GB instead of another $7.30 a month.
            endpoint_subnets = self.vpc.select_subnets(subnet_type=private_type, one_per_az=True).subnets
            for name, service in INTERFACE_ENDPOINTS.items():
                self.endpoints[name] = self.vpc.add_interface_endpoint(
                    name,
                    service=ec2.InterfaceVpcEndpointAwsService(service),
                    subnets=ec2.SubnetSelection(subnets=endpoint_subnets[: config.endpoint_azs]),
                    security_groups=[endpoint_sg],
                    private_dns_enabled=True,
                    open=False,
                )
