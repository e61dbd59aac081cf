# One role per Lambda, each with only the statements its function needs. The building blocks:
#
#   statement            api  schedule  services  ecs_events   why
#   logs, vpc             x      x         x          x        own log group; ENIs in the isolated subnets
#   database_secret       x      x         x          x        PostgreSQL credentials
#   bootstrap_key         x      x         x          x        every handler's first database use installs the
#                                                              bootstrap key's hash if none exists yet
#   queues_manage         x                                    work queues made through the API get SQS queues;
#                                                              `orch work-queue inspect` peeks at the DLQ
#   queues_send           x      x         x                   due runs go to <prefix>-<work queue>
#   ecs_events_consume                                x        the SQS event source of ECS task changes
#   scheduler             x                x                   the API mirrors deployment schedules; the services
#                                                              tick reconciles the group
#   storage               x                x                   bundles and results (services: retention)
#   ecs_dispatch          x                x                   launch, cancel and watch flow runs on the cluster
#
# No statement allows a wildcard action. Resources are "*" only for actions IAM cannot scope to a resource
# (ec2 network-interface actions of Lambda in a VPC, scheduler:ListSchedules, ecs:RegisterTaskDefinition,
# ecs:DescribeTaskDefinition, ecs:ListTaskDefinitions); PassRole, which decides what those task definitions can do,
# names the two roles.

locals {
  cluster_condition = { ArnEquals = { "ecs:cluster" = aws_ecs_cluster.this.arn } }

  statements = {
    vpc = [{
      Sid    = "LambdaNetworkInterfaces"
      Effect = "Allow"
      Action = [
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
      ]
      Resource = ["*"]
    }]
    database_secret = [{
      Sid      = "ReadDatabaseSecret"
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
      Resource = [local.database_secret_arn]
    }]
    bootstrap_key = [{
      Sid      = "ReadBootstrapKey"
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
      Resource = [aws_secretsmanager_secret.bootstrap_key.arn]
    }]
    queues_manage = [{
      Sid      = "ManageWorkQueues"
      Effect   = "Allow"
      Action   = ["sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]
      Resource = [local.queue_arn_pattern]
    }]
    queues_send = [{
      Sid      = "SendRuns"
      Effect   = "Allow"
      Action   = ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"]
      Resource = [local.queue_arn_pattern]
    }]
    ecs_events_consume = [{
      Sid      = "ConsumeEcsEvents"
      Effect   = "Allow"
      Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
      Resource = [aws_sqs_queue.ecs_events.arn]
    }]
    scheduler = [
      {
        Sid    = "ManageSchedulesOfTheGroup"
        Effect = "Allow"
        Action = [
          "scheduler:CreateSchedule",
          "scheduler:UpdateSchedule",
          "scheduler:DeleteSchedule",
          "scheduler:GetSchedule",
        ]
        Resource = ["arn:${local.partition}:scheduler:${local.region}:${local.account}:schedule/${aws_scheduler_schedule_group.this.name}/*"]
      },
      {
        Sid      = "ReadTheScheduleGroup"
        Effect   = "Allow"
        Action   = ["scheduler:GetScheduleGroup"]
        Resource = [aws_scheduler_schedule_group.this.arn]
      },
      {
        Sid      = "ListSchedules"
        Effect   = "Allow"
        Action   = ["scheduler:ListSchedules"]
        Resource = ["*"]
      },
      {
        Sid       = "PassTheSchedulerRole"
        Effect    = "Allow"
        Action    = ["iam:PassRole"]
        Resource  = [aws_iam_role.scheduler.arn]
        Condition = { StringEquals = { "iam:PassedToService" = "scheduler.amazonaws.com" } }
      },
    ]
    storage = [
      {
        Sid      = "ListBuckets"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [aws_s3_bucket.code.arn, aws_s3_bucket.results.arn]
      },
      {
        Sid      = "ReadWriteBundlesAndResults"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        Resource = ["${aws_s3_bucket.code.arn}/bundles/*", "${aws_s3_bucket.results.arn}/results/*"]
      },
    ]
    ecs_dispatch = [
      {
        Sid       = "RunTasksOnTheCluster"
        Effect    = "Allow"
        Action    = ["ecs:RunTask"]
        Resource  = ["arn:${local.partition}:ecs:${local.region}:${local.account}:task-definition/*"]
        Condition = local.cluster_condition
      },
      {
        Sid       = "StopAndWatchTasksOfTheCluster"
        Effect    = "Allow"
        Action    = ["ecs:StopTask", "ecs:DescribeTasks"]
        Resource  = ["arn:${local.partition}:ecs:${local.region}:${local.account}:task/${aws_ecs_cluster.this.name}/*"]
        Condition = local.cluster_condition
      },
      {
        Sid       = "TagTasksAtLaunch"
        Effect    = "Allow"
        Action    = ["ecs:TagResource"]
        Resource  = ["arn:${local.partition}:ecs:${local.region}:${local.account}:task/${aws_ecs_cluster.this.name}/*"]
        Condition = { StringEquals = { "ecs:CreateAction" = "RunTask" } }
      },
      {
        # The ECS launcher tags each task definition revision with the hash of its content when registering it.
        Sid       = "TagTaskDefinitionsAtRegistration"
        Effect    = "Allow"
        Action    = ["ecs:TagResource"]
        Resource  = ["arn:${local.partition}:ecs:${local.region}:${local.account}:task-definition/*"]
        Condition = { StringEquals = { "ecs:CreateAction" = "RegisterTaskDefinition" } }
      },
      {
        Sid      = "TaskDefinitions"
        Effect   = "Allow"
        Action   = ["ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions"]
        Resource = ["*"]
      },
      {
        Sid       = "PassTheTaskRoles"
        Effect    = "Allow"
        Action    = ["iam:PassRole"]
        Resource  = [aws_iam_role.ecs_task.arn, aws_iam_role.ecs_execution.arn]
        Condition = { StringEquals = { "iam:PassedToService" = "ecs-tasks.amazonaws.com" } }
      },
    ]
  }

  # Which building blocks each function gets (see the table above).
  function_statements = {
    api        = ["vpc", "database_secret", "bootstrap_key", "queues_manage", "queues_send", "scheduler", "storage", "ecs_dispatch"]
    schedule   = ["vpc", "database_secret", "bootstrap_key", "queues_send"]
    services   = ["vpc", "database_secret", "bootstrap_key", "queues_send", "scheduler", "storage", "ecs_dispatch"]
    ecs_events = ["vpc", "database_secret", "bootstrap_key", "ecs_events_consume"]
  }

  function_policies = {
    for key, blocks in local.function_statements : key => {
      Version = "2012-10-17"
      Statement = concat(
        [{
          Sid      = "WriteOwnLogs"
          Effect   = "Allow"
          Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
          Resource = ["${aws_cloudwatch_log_group.lambda[key].arn}:*"]
        }],
        flatten([for block in blocks : local.statements[block]]),
      )
    }
  }
}

resource "aws_iam_role" "lambda" {
  for_each = local.functions

  name = "${local.function_names[each.key]}-lambda"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account } }
    }]
  })
}

resource "aws_iam_role_policy" "lambda" {
  for_each = local.functions

  name   = "orch-${replace(each.key, "_", "-")}"
  role   = aws_iam_role.lambda[each.key].name
  policy = jsonencode(local.function_policies[each.key])
}
