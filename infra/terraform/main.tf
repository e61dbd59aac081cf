# orch's serverless control plane: the names, ARNs and environment every other file of this module shares.
#
# Layout: network.tf (VPC without NAT), database.tf (Aurora Serverless v2 or RDS, RDS Proxy), storage.tf (S3),
# queues.tf (SQS), ecs.tf (Fargate cluster and roles), scheduler.tf (EventBridge Scheduler), secrets.tf
# (bootstrap admin key), iam.tf (one least-privilege role per Lambda), lambda.tf (the four functions and their
# triggers), outputs.tf (what `orch stack outputs` reads).

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

data "aws_availability_zones" "available" {
  state = "available"
}

locals {
  prefix    = var.name_prefix
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id
  azs       = slice(data.aws_availability_zones.available.names, 0, var.az_count)

  # The four functions of the control plane, all from the same zip. timeout is in seconds.
  functions = {
    api = {
      handler     = "orch.control_plane.lambda_handlers.api_handler"
      description = "orch API (FastAPI through Mangum) behind a Function URL"
      timeout     = 30
    }
    schedule = {
      handler     = "orch.control_plane.lambda_handlers.schedule_handler"
      description = "orch schedule trigger: EventBridge Scheduler creates a deployment's scheduled run"
      timeout     = 60
    }
    services = {
      handler     = "orch.control_plane.lambda_handlers.services_handler"
      description = "orch services tick: late runs, zombies, cancellation, retention"
      timeout     = 240
    }
    ecs_events = {
      handler     = "orch.control_plane.lambda_handlers.ecs_events_handler"
      description = "orch ECS task state changes (from SQS) reported to flow runs"
      timeout     = 60
    }
  }
  function_names = { for key, _ in local.functions : key => "${local.prefix}-${replace(key, "_", "-")}" }

  # Built from the name rather than taken from the resource: the schedule function's own environment carries its
  # ARN (ORCH_SCHEDULER_TARGET_ARN), which would otherwise be a dependency cycle.
  function_arns = {
    for key, name in local.function_names :
    key => "arn:${local.partition}:lambda:${local.region}:${local.account}:function:${name}"
  }

  code_bucket_name    = "${local.prefix}-code-${local.account}-${local.region}"
  results_bucket_name = "${local.prefix}-results-${local.account}-${local.region}"

  scheduler_group_name = local.prefix
  # The control plane names a work queue's SQS queues <ORCH_SQS_QUEUE_PREFIX><work queue>[-dlq]: the prefix carries
  # the dash.
  queue_prefix      = "${local.prefix}-"
  queue_arn_pattern = "arn:${local.partition}:sqs:${local.region}:${local.account}:${local.queue_prefix}*"

  # The environment contract of the control plane on Lambda: the same on every function.
  lambda_environment = {
    ORCH_DATABASE_SECRET_ARN      = local.database_secret_arn
    ORCH_DATABASE_HOST            = local.database_host
    ORCH_DATABASE_NAME            = var.database_name
    ORCH_DATABASE_POOL            = "null"
    ORCH_RUN_QUEUE                = "sqs"
    ORCH_SQS_QUEUE_PREFIX         = local.queue_prefix
    ORCH_SCHEDULE_BACKEND         = "eventbridge"
    ORCH_SCHEDULER_GROUP_NAME     = aws_scheduler_schedule_group.this.name
    ORCH_SCHEDULER_ROLE_ARN       = aws_iam_role.scheduler.arn
    ORCH_SCHEDULER_TARGET_ARN     = local.function_arns.schedule
    ORCH_STORAGE_URL              = "s3://${aws_s3_bucket.code.bucket}/bundles"
    ORCH_RESULTS_STORAGE_URL      = "s3://${aws_s3_bucket.results.bucket}/results"
    ORCH_ECS_CLUSTER              = aws_ecs_cluster.this.arn
    ORCH_ECS_SUBNETS              = join(",", aws_subnet.public[*].id)
    ORCH_ECS_SECURITY_GROUPS      = aws_security_group.tasks.id
    ORCH_ECS_TASK_ROLE_ARN        = aws_iam_role.ecs_task.arn
    ORCH_ECS_EXECUTION_ROLE_ARN   = aws_iam_role.ecs_execution.arn
    ORCH_ECS_LOG_GROUP            = aws_cloudwatch_log_group.tasks.name
    ORCH_AUTH                     = "on"
    ORCH_BOOTSTRAP_KEY_SECRET_ARN = aws_secretsmanager_secret.bootstrap_key.arn
    POWERTOOLS_SERVICE_NAME       = "orch"
    POWERTOOLS_METRICS_NAMESPACE  = "orch"
  }
}
