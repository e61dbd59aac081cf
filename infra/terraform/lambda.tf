# The four functions, their log groups and what invokes each:
#   api        <- its Function URL (authorization NONE: orch's own API keys authenticate every request)
#   schedule   <- EventBridge Scheduler schedules (through the scheduler role, see scheduler.tf)
#   services   <- an EventBridge rule, var.services_schedule
#   ecs_events <- the SQS queue fed by the ECS task-state rule (queues.tf)

resource "aws_cloudwatch_log_group" "lambda" {
  for_each = local.functions

  name              = "/aws/lambda/${local.function_names[each.key]}"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "this" {
  for_each = local.functions

  function_name = local.function_names[each.key]
  description   = each.value.description
  role          = aws_iam_role.lambda[each.key].arn
  handler       = each.value.handler
  runtime       = "python3.12"
  architectures = ["arm64"]
  memory_size   = var.lambda_memory_mb
  timeout       = each.value.timeout

  s3_bucket         = aws_s3_object.lambda_package.bucket
  s3_key            = aws_s3_object.lambda_package.key
  s3_object_version = aws_s3_object.lambda_package.version_id
  source_code_hash  = filebase64sha256(var.lambda_zip)

  vpc_config {
    subnet_ids         = aws_subnet.isolated[*].id
    security_group_ids = [aws_security_group.lambda.id]
  }

  environment {
    variables = local.lambda_environment
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.lambda[each.key].name
  }

  # The API reads the bootstrap key at its first start: the secret must have its value by then.
  depends_on = [aws_iam_role_policy.lambda, module.bootstrap_key_value]
}

# --- api: Function URL ---------------------------------------------------------------------------------------

resource "aws_lambda_function_url" "api" {
  function_name      = aws_lambda_function.this["api"].function_name
  authorization_type = "NONE"
  # With NONE, the provider also adds the "lambda:InvokeFunctionUrl" permission for everyone.
}

# Since October 2025 a public Function URL also needs "lambda:InvokeFunction" for everyone, limited to calls made
# through the URL (condition lambda:InvokedViaFunctionUrl). aws_lambda_permission learned that condition only in
# provider 6.x; CloudFormation's AWS::Lambda::Permission has it, so a one-resource stack adds the statement.
# Without the condition the function could be invoked directly by anyone, which this avoids.
resource "aws_cloudformation_stack" "api_url_invoke_permission" {
  name = "${local.prefix}-api-url-invoke-permission"
  template_body = jsonencode({
    AWSTemplateFormatVersion = "2010-09-09"
    Description              = "orch: lets the public Function URL of the API invoke the function, and nothing else"
    Resources = {
      FunctionUrlInvoke = {
        Type = "AWS::Lambda::Permission"
        Properties = {
          Action                = "lambda:InvokeFunction"
          FunctionName          = aws_lambda_function.this["api"].function_name
          Principal             = "*"
          InvokedViaFunctionUrl = true
        }
      }
    }
  })
}

# --- services: every minute ----------------------------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "services" {
  name                = "${local.prefix}-services-tick"
  description         = "Runs the orch services (late runs, zombies, cancellation, retention)"
  schedule_expression = var.services_schedule
}

resource "aws_cloudwatch_event_target" "services" {
  rule = aws_cloudwatch_event_rule.services.name
  arn  = aws_lambda_function.this["services"].arn

  retry_policy {
    # A missed tick is made up by the next one; retrying an old tick only adds load.
    maximum_retry_attempts       = 0
    maximum_event_age_in_seconds = 60
  }
}

resource "aws_lambda_permission" "services_from_eventbridge" {
  statement_id  = "AllowServicesTickRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["services"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.services.arn
}

# --- ecs_events: SQS event source ----------------------------------------------------------------------------

resource "aws_lambda_event_source_mapping" "ecs_events" {
  event_source_arn                   = aws_sqs_queue.ecs_events.arn
  function_name                      = aws_lambda_function.this["ecs_events"].arn
  batch_size                         = 10
  maximum_batching_window_in_seconds = 5
  # The handler reports failed records one by one (Powertools batch processing) instead of failing the batch.
  function_response_types = ["ReportBatchItemFailures"]

  depends_on = [aws_iam_role_policy.lambda]
}
