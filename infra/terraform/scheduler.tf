# EventBridge Scheduler: the control plane creates one schedule per deployment schedule in this group; each fires
# the schedule Lambda with the deployment id and scheduled time, assuming this role, which may do nothing else.

resource "aws_scheduler_schedule_group" "this" {
  name = local.scheduler_group_name
}

resource "aws_iam_role" "scheduler" {
  name = "${local.prefix}-scheduler-invoke"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "scheduler.amazonaws.com" }
      Action    = "sts:AssumeRole"
      # Only schedules of this stack's group may use the role (confused-deputy protection).
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account }
        ArnEquals    = { "aws:SourceArn" = aws_scheduler_schedule_group.this.arn }
      }
    }]
  })
}

resource "aws_iam_role_policy" "scheduler" {
  name = "invoke-schedule-function"
  role = aws_iam_role.scheduler.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "InvokeScheduleFunction"
      Effect   = "Allow"
      Action   = ["lambda:InvokeFunction"]
      Resource = [local.function_arns.schedule, "${local.function_arns.schedule}:*"]
    }]
  })
}
