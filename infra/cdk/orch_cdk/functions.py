"""The control plane's four Lambda functions, their triggers and one least-privilege role each.

| function    | handler (orch.control_plane.lambda_handlers.*) | invoked by                                      |
|-------------|------------------------------------------------|-------------------------------------------------|
| api         | api_handler (FastAPI via Mangum)               | Lambda Function URL (default) or an HTTP API    |
| schedule    | schedule_handler                               | EventBridge Scheduler, one schedule per         |
|             |                                                | deployment schedule, payload                    |
|             |                                                | {"deployment_id", "schedule_id",                |
|             |                                                |  "scheduled_time"}                              |
| services    | services_handler                               | EventBridge rule rate(N minutes), N=1 default   |
| ecs_events  | ecs_events_handler                             | SQS queue fed by an EventBridge rule on "ECS    |
|             |                                                | Task State Change" events of the stack's cluster|

The Function URL has auth type NONE on purpose: every request is authenticated by orch's own API keys (ORCH_AUTH=on,
hashed keys in the database), which the CLI, SDK and agents already send as a bearer token. IAM auth on the URL
would force every client to SigV4-sign with AWS credentials, which agents outside AWS and browsers do not have.

What each role may do beyond writing its own log group and managing its VPC network interfaces:

| permission                                                     | api | schedule | services | ecs_events |
|----------------------------------------------------------------|-----|----------|----------|------------|
| secretsmanager:GetSecretValue on the database secret           |  x  |    x     |    x     |     x      |
| secretsmanager:GetSecretValue on the bootstrap-key secret      |  x  |    x     |    x     |     x      |
|   (every handler hashes it in on its first database use)       |     |          |          |            |
| rds-db:connect through the proxy (only with db_iam_auth=true)  |  x  |    x     |    x     |     x      |
| SQS manage work queues `<prefix>-*` (send/receive/delete       |  x  |          |    x     |            |
|   message, create/delete queue, attributes)                    |     |          |          |            |
| SQS send to work queues `<prefix>-*`                           |  x  |    x     |    x     |     x      |
| SQS consume the ECS-events queue                               |     |          |          |     x      |
| scheduler Create/Update/Delete/GetSchedule in the stack group, |  x  |          |    x     |            |
|   GetScheduleGroup on it, ListSchedules (no resource-level     |     |          |          |            |
|   permission exists) + iam:PassRole on the invoke role         |     |          |          |            |
| S3 code bucket bundles/ (read, write)                          |  x  |          |          |            |
| S3 results bucket results/ (read, write, delete)               |  x  |          |    x     |            |
| ecs:RunTask, RegisterTaskDefinition (+ TagResource on create)  |  x  |          |    x     |            |
|   + iam:PassRole on the task and execution roles               |     |          |          |            |
| ecs:StopTask, DescribeTasks on the stack's cluster             |  x  |          |    x     |            |

The ECS rights let the control plane launch and stop flow runs on the stack's cluster itself; agents started
elsewhere (`orch agent start --sqs`) bring their own credentials.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from orch_cdk.config import StackConfig
from orch_cdk.database import DATABASE_NAME, Database
from orch_cdk.network import Network
from orch_cdk.policies import grant_objects, grant_secret_value
from orch_cdk.runtime import Runtime
from orch_cdk.storage import Storage, make_queue_pair

__all__ = ["HANDLER_MODULE", "Functions"]

HANDLER_MODULE = "orch.control_plane.lambda_handlers"


class Functions(Construct):
    """Lambdas, their roles, the schedule group, the services rule and the ECS-events pipeline."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        code: lambda_.Code,
        network: Network,
        database: Database,
        storage: Storage,
        runtime: Runtime,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._network = network
        self._code = code
        self._log_retention = log_retention
        stack = Stack.of(self)
        prefix = config.prefix

        # The schedule function's ARN is built from its fixed name: it goes into every function's environment,
        # including its own, which a CloudFormation reference could not do without a cycle.
        schedule_name = f"{prefix}-schedule"
        self.schedule_function_arn = stack.format_arn(
            service="lambda",
            resource="function",
            resource_name=schedule_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

        self.schedule_group = scheduler.ScheduleGroup(
            self,
            "ScheduleGroup",
            schedule_group_name=f"{prefix}-schedules",
            # Deleting the group deletes the schedules the API created in it; retained, they would keep invoking a
            # deleted function and the fixed name would block the next deploy.
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.scheduler_role = iam.Role(
            self,
            "SchedulerInvokeRole",
            description="EventBridge Scheduler uses this role to invoke the orch schedule function, nothing else.",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnEquals": {"aws:SourceArn": self.schedule_group.schedule_group_arn},
                },
            ),
        )
        self.scheduler_role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.schedule_function_arn])
        )

        self.ecs_events_queue, self.ecs_events_dlq = make_queue_pair(
            self,
            "EcsEventsQueue",
            # Outside `<prefix>-*` on purpose, so the work-queue permissions cannot touch it.
            queue_name=f"{prefix}_ecs-events",
            # Six times the consumer's timeout, as AWS advises for Lambda event sources.
            visibility_timeout=Duration.seconds(6 * 60),
            removal=RemovalPolicy.DESTROY,
        )

        subnets = network.private_subnets if config.nat_gateways else network.public_subnets
        environment = {
            "ORCH_DATABASE_SECRET_ARN": database.secret.secret_arn,
            "ORCH_DATABASE_HOST": database.host,
            "ORCH_DATABASE_NAME": DATABASE_NAME,
            "ORCH_DATABASE_POOL": "null",
            "ORCH_DATABASE_IAM_AUTH": "on" if config.db_iam_auth else "off",
            "ORCH_RUN_QUEUE": "sqs",
            "ORCH_SQS_QUEUE_PREFIX": config.queue_prefix,
            "ORCH_SCHEDULE_BACKEND": "eventbridge",
            "ORCH_SCHEDULER_GROUP_NAME": self.schedule_group.schedule_group_name,
            "ORCH_SCHEDULER_ROLE_ARN": self.scheduler_role.role_arn,
            "ORCH_SCHEDULER_TARGET_ARN": self.schedule_function_arn,
            "ORCH_STORAGE_URL": f"s3://{storage.code_bucket.bucket_name}/bundles",
            "ORCH_RESULTS_STORAGE_URL": f"s3://{storage.results_bucket.bucket_name}/results",
            "ORCH_ECS_CLUSTER": runtime.cluster.cluster_arn,
            "ORCH_ECS_SUBNETS": ",".join(network.vpc.select_subnets(subnet_type=subnets.subnet_type).subnet_ids),
            "ORCH_ECS_SECURITY_GROUPS": network.tasks_sg.security_group_id,
            "ORCH_ECS_ASSIGN_PUBLIC_IP": "off" if config.nat_gateways else "on",
            "ORCH_ECS_TASK_ROLE_ARN": runtime.task_role.role_arn,
            "ORCH_ECS_EXECUTION_ROLE_ARN": runtime.execution_role.role_arn,
            "ORCH_ECS_LOG_GROUP": runtime.log_group.log_group_name,
            "ORCH_AUTH": "on",
            "ORCH_BOOTSTRAP_KEY_SECRET_ARN": storage.bootstrap_key.secret_arn,
            "POWERTOOLS_SERVICE_NAME": "orch",
            "POWERTOOLS_METRICS_NAMESPACE": "orch",
        }
        self.environment = environment

        self.api = self._function("Api", f"{prefix}-api", "api_handler", memory=1024, timeout=30, env=environment)
        self.schedule = self._function("Schedule", schedule_name, "schedule_handler", timeout=60, env=environment)
        # A tick must end before the next one starts.
        services_timeout = min(55, config.services_rate_minutes * 60 - 5)
        self.services = self._function(
            "Services", f"{prefix}-services", "services_handler", timeout=services_timeout, env=environment
        )
        self.ecs_events = self._function(
            "EcsEvents", f"{prefix}-ecs-events", "ecs_events_handler", timeout=60, env=environment
        )
        everyone = (self.api, self.schedule, self.services, self.ecs_events)

        # --- permissions (the table in the module docstring) ---
        for function in everyone:
            role = _role(function)
            # Every handler migrates and installs the bootstrap key on its first database use.
            grant_secret_value(role, database.secret, storage.bootstrap_key)
            database.grant_connect(role)
            role.add_to_principal_policy(_sqs_statement(stack, prefix, ["sqs:SendMessage", "sqs:GetQueueUrl"]))
        for function in (self.api, self.services):
            role = _role(function)
            role.add_to_principal_policy(
                _sqs_statement(
                    stack,
                    prefix,
                    [
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                        "sqs:GetQueueAttributes",
                        "sqs:SetQueueAttributes",
                        "sqs:CreateQueue",
                        "sqs:DeleteQueue",
                    ],
                )
            )
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=[
                        "scheduler:CreateSchedule",
                        "scheduler:UpdateSchedule",
                        "scheduler:DeleteSchedule",
                        "scheduler:GetSchedule",
                    ],
                    resources=[
                        stack.format_arn(
                            service="scheduler",
                            resource="schedule",
                            resource_name=f"{self.schedule_group.schedule_group_name}/*",
                        )
                    ],
                )
            )
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["scheduler:GetScheduleGroup"],
                    resources=[self.schedule_group.schedule_group_arn],
                )
            )
            role.add_to_principal_policy(
                # ListSchedules has no resource-level permissions; the backend filters by group and name prefix.
                iam.PolicyStatement(actions=["scheduler:ListSchedules"], resources=["*"])
            )
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["iam:PassRole"],
                    resources=[self.scheduler_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
                )
            )
            grant_objects(role, storage.results_bucket, "results", write=True)
            self._grant_ecs_launch(role, runtime)
        grant_objects(_role(self.api), storage.code_bucket, "bundles", write=True)
        for function in (self.api, self.services):
            _role(function).add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["ecs:StopTask", "ecs:DescribeTasks"],
                    resources=[
                        stack.format_arn(
                            service="ecs", resource="task", resource_name=f"{runtime.cluster.cluster_name}/*"
                        )
                    ],
                    conditions={"ArnEquals": {"ecs:cluster": runtime.cluster.cluster_arn}},
                )
            )

        # --- triggers ---
        events.Rule(
            self,
            "ServicesTick",
            description="orch services: scheduler, dispatcher, late runs, zombies, cancellation, retention",
            schedule=events.Schedule.rate(Duration.minutes(config.services_rate_minutes)),
            # A missed or failed tick is redone by the next one; retrying would only pile ticks up.
            targets=[targets.LambdaFunction(self.services, retry_attempts=0, max_event_age=Duration.minutes(2))],
        )
        events.Rule(
            self,
            "EcsTaskStateChange",
            description="ECS task state changes of the orch cluster, for the ecs_events function",
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                detail_type=["ECS Task State Change"],
                detail={"clusterArn": [runtime.cluster.cluster_arn]},
            ),
            targets=[targets.SqsQueue(self.ecs_events_queue, dead_letter_queue=self.ecs_events_dlq)],
        )
        self.ecs_events.add_event_source(
            event_sources.SqsEventSource(self.ecs_events_queue, batch_size=10, report_batch_item_failures=True)
        )

        # --- the API's front door ---
        if config.api_endpoint == "http_api":
            http_api = apigwv2.HttpApi(
                self,
                "HttpApi",
                api_name=f"{prefix}-api",
                description="orch API (requests are authenticated by orch API keys)",
                default_integration=integrations.HttpLambdaIntegration("Api", self.api),
            )
            self.api_url: str = _required_url(http_api.url)
        else:
            function_url = self.api.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
            self.api_url = function_url.url

    def _function(
        self, construct_id: str, name: str, handler: str, *, timeout: int, env: dict[str, str], memory: int = 512
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            log_group_name=f"/aws/lambda/{name}",
            retention=self._log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"orch {handler}",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[f"{log_group.log_group_arn}:log-stream:*"],
            )
        )
        # What AWSLambdaVPCAccessExecutionRole grants; these EC2 actions have no resource-level permissions.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSubnets",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                resources=["*"],
            )
        )
        return lambda_.Function(
            self,
            construct_id,
            function_name=name,
            description=f"orch control plane: {handler}",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler=f"{HANDLER_MODULE}.{handler}",
            code=self._code,
            memory_size=memory,
            timeout=Duration.seconds(timeout),
            environment=env,
            role=role,
            log_group=log_group,
            vpc=self._network.vpc,
            vpc_subnets=self._network.private_subnets,
            security_groups=[self._network.lambda_sg],
        )

    def _grant_ecs_launch(self, role: iam.IRole, runtime: Runtime) -> None:
        stack = Stack.of(self)
        cluster_condition = {"ArnEquals": {"ecs:cluster": runtime.cluster.cluster_arn}}
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ecs:RunTask"],
                resources=[stack.format_arn(service="ecs", resource="task-definition", resource_name="*")],
                conditions=cluster_condition,
            )
        )
        role.add_to_principal_policy(
            # RegisterTaskDefinition has no resource-level permissions.
            iam.PolicyStatement(actions=["ecs:RegisterTaskDefinition"], resources=["*"])
        )
        role.add_to_principal_policy(
            # Tags given to RunTask / RegisterTaskDefinition need TagResource, but only as part of those calls.
            iam.PolicyStatement(
                actions=["ecs:TagResource"],
                resources=["*"],
                conditions={"StringEquals": {"ecs:CreateAction": ["RunTask", "RegisterTaskDefinition"]}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[runtime.task_role.role_arn, runtime.execution_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            )
        )


def _sqs_statement(stack: Stack, prefix: str, actions: list[str]) -> iam.PolicyStatement:
    """`actions` on every queue named `<prefix>-*`: the configured work queues and those the API creates."""
    return iam.PolicyStatement(
        actions=actions,
        resources=[f"arn:{stack.partition}:sqs:{stack.region}:{stack.account}:{prefix}-*"],
    )


def _role(function: lambda_.Function) -> iam.IRole:
    role = function.role
    if role is None:  # every function here is built with its own role
        raise RuntimeError(f"{function.node.path} has no role")
    return role


def _required_url(url: str | None) -> str:
    if url is None:  # an HttpApi with a default stage always has one
        raise RuntimeError("the HTTP API has no default stage URL")
    return url
