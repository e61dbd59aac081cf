# Values the mock AWS provider returns where a generated random string would not do: a real-looking account,
# region and zones (ARNs and names are built from them), and the secret RDS creates for its master password.

mock_data "aws_partition" {
  defaults = {
    partition = "aws"
  }
}

mock_data "aws_region" {
  defaults = {
    name = "eu-west-1"
  }
}

mock_data "aws_caller_identity" {
  defaults = {
    account_id = "123456789012"
  }
}

mock_data "aws_availability_zones" {
  defaults = {
    names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
  }
}

mock_resource "aws_rds_cluster" {
  defaults = {
    arn      = "arn:aws:rds:eu-west-1:123456789012:cluster:orch"
    endpoint = "orch.cluster-abc.eu-west-1.rds.amazonaws.com"
    master_user_secret = [{
      secret_arn    = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-abc-123456"
      kms_key_id    = "alias/aws/secretsmanager"
      secret_status = "active"
    }]
  }
}

mock_resource "aws_db_instance" {
  defaults = {
    arn     = "arn:aws:rds:eu-west-1:123456789012:db:orch"
    address = "orch.abc.eu-west-1.rds.amazonaws.com"
    master_user_secret = [{
      secret_arn    = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-abc-123456"
      kms_key_id    = "alias/aws/secretsmanager"
      secret_status = "active"
    }]
  }
}

mock_resource "aws_db_proxy" {
  defaults = {
    endpoint = "orch.proxy-abc.eu-west-1.rds.amazonaws.com"
  }
}

mock_resource "aws_ecs_cluster" {
  defaults = {
    arn = "arn:aws:ecs:eu-west-1:123456789012:cluster/orch"
  }
}

mock_resource "aws_scheduler_schedule_group" {
  defaults = {
    arn = "arn:aws:scheduler:eu-west-1:123456789012:schedule-group/orch"
  }
}

mock_resource "aws_lambda_function_url" {
  defaults = {
    function_url = "https://abc123.lambda-url.eu-west-1.on.aws/"
  }
}

mock_resource "aws_secretsmanager_secret" {
  defaults = {
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orch/bootstrap-admin-key-AbCdEf"
  }
}

# Arguments the provider validates as ARNs need ARN-shaped mock values.
mock_resource "aws_iam_role" {
  defaults = {
    arn = "arn:aws:iam::123456789012:role/orch-mock"
  }
}

mock_resource "aws_sqs_queue" {
  defaults = {
    arn = "arn:aws:sqs:eu-west-1:123456789012:orch-mock"
  }
}

mock_resource "aws_lambda_function" {
  defaults = {
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:orch-mock"
  }
}

mock_resource "aws_cloudwatch_event_rule" {
  defaults = {
    arn = "arn:aws:events:eu-west-1:123456789012:rule/orch-mock"
  }
}

mock_resource "aws_cloudwatch_log_group" {
  defaults = {
    arn = "arn:aws:logs:eu-west-1:123456789012:log-group:orch-mock"
  }
}

mock_resource "aws_s3_bucket" {
  defaults = {
    arn = "arn:aws:s3:::orch-mock"
  }
}

# Distinct values where a test tells resources of one type apart (which role is passed, which queue consumed).
override_resource {
  target = aws_iam_role.ecs_task
  values = { arn = "arn:aws:iam::123456789012:role/orch-ecs-task" }
}

override_resource {
  target = aws_iam_role.ecs_execution
  values = { arn = "arn:aws:iam::123456789012:role/orch-ecs-execution" }
}

override_resource {
  target = aws_iam_role.scheduler
  values = { arn = "arn:aws:iam::123456789012:role/orch-scheduler-invoke" }
}

override_resource {
  target = aws_sqs_queue.ecs_events
  values = {
    arn = "arn:aws:sqs:eu-west-1:123456789012:orch-ecs-events"
    id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/orch-ecs-events"
  }
}

override_resource {
  target = aws_sqs_queue.work_dlq
  values = { arn = "arn:aws:sqs:eu-west-1:123456789012:orch-work-dlq" }
}

override_resource {
  target = aws_s3_bucket.code
  values = { arn = "arn:aws:s3:::orch-code-123456789012-eu-west-1" }
}

override_resource {
  target = aws_s3_bucket.results
  values = { arn = "arn:aws:s3:::orch-results-123456789012-eu-west-1" }
}

override_resource {
  target = aws_cloudwatch_log_group.tasks
  values = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/orch/orch/flow-runs" }
}

override_resource {
  target = aws_cloudwatch_event_rule.ecs_task_state
  values = { arn = "arn:aws:events:eu-west-1:123456789012:rule/orch-ecs-task-state" }
}

mock_resource "aws_db_proxy_default_target_group" {
  defaults = {
    name = "default"
  }
}

override_resource {
  target = aws_secretsmanager_secret.flow_run_api_key
  values = { arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orch/flow-run-api-key-GhIjKl" }
}
