# One SQS queue and dead-letter queue per orch work queue (the run queue of ORCH_RUN_QUEUE=sqs: the control plane
# sends due runs, agents receive them), plus the stack's own queue of ECS task state changes. All encrypted with
# SQS-managed keys, which EventBridge can deliver to (it cannot use the AWS-managed KMS key of SQS).
#
# The control plane creates the queues of work queues made later through the API itself (SqsRunQueue.create_queue)
# and, for a work queue that exists here already, gets these back: SQS returns an existing queue only when the
# attributes sent match, so visibility timeout, long polling, encryption, DLQ retention and the redrive count here
# equal what SqsRunQueue sends with the control plane's default settings.

resource "aws_sqs_queue" "work_dlq" {
  for_each = toset(var.work_queues)

  name                      = "${local.queue_prefix}${each.value}-dlq"
  sqs_managed_sse_enabled   = true
  message_retention_seconds = 1209600 # 14 days, SQS's maximum, to inspect what failed
}

resource "aws_sqs_queue" "work" {
  for_each = toset(var.work_queues)

  name                       = "${local.queue_prefix}${each.value}"
  sqs_managed_sse_enabled    = true
  visibility_timeout_seconds = var.queue_visibility_timeout_seconds
  receive_wait_time_seconds  = 20 # long polling by default
  message_retention_seconds  = 345600

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.work_dlq[each.value].arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "work_dlq" {
  for_each = toset(var.work_queues)

  queue_url = aws_sqs_queue.work_dlq[each.value].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.work[each.value].arn]
  })
}

# --- ECS task state changes -> SQS -> ecs_events Lambda ------------------------------------------------------
# Through a queue rather than straight to the Lambda: a burst of task events is batched, and events that fail
# (database resuming, a deploy in progress) are retried and end in a dead-letter queue instead of being lost.

resource "aws_sqs_queue" "ecs_events_dlq" {
  name                      = "${local.prefix}-ecs-events-dlq"
  sqs_managed_sse_enabled   = true
  message_retention_seconds = 1209600
}

resource "aws_sqs_queue" "ecs_events" {
  name                    = "${local.prefix}-ecs-events"
  sqs_managed_sse_enabled = true
  # At least 6x the consumer's timeout, as Lambda recommends for SQS event sources.
  visibility_timeout_seconds = 6 * local.functions.ecs_events.timeout

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.ecs_events_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_cloudwatch_event_rule" "ecs_task_state" {
  name        = "${local.prefix}-ecs-task-state"
  description = "ECS task state changes of the orch cluster"
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail        = { clusterArn = [aws_ecs_cluster.this.arn] }
  })
}

resource "aws_cloudwatch_event_target" "ecs_task_state" {
  rule = aws_cloudwatch_event_rule.ecs_task_state.name
  arn  = aws_sqs_queue.ecs_events.arn
}

resource "aws_sqs_queue_policy" "ecs_events" {
  queue_url = aws_sqs_queue.ecs_events.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "FromTheEcsTaskStateRule"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.ecs_events.arn
      Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.ecs_task_state.arn } }
    }]
  })
}
