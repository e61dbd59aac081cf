# What an orch agent needs in this stack (`orch agent start --work-queue NAME --sqs`, launching flow runs on the
# cluster): a managed policy to attach to the role or user the agent runs as, wherever it runs. The agent claims
# runs through the API with an API key; its AWS access covers the work queues and the cluster only.

locals {
  agent_statements = [
    {
      Sid    = "ReceiveRuns"
      Effect = "Allow"
      Action = [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
      ]
      Resource = [local.queue_arn_pattern]
    },
    {
      Sid      = "ReadFlowRunLogs"
      Effect   = "Allow"
      Action   = ["logs:GetLogEvents", "logs:FilterLogEvents"]
      Resource = ["${aws_cloudwatch_log_group.tasks.arn}:*"]
    },
  ]
}

resource "aws_iam_policy" "agent" {
  name        = "${local.prefix}-agent"
  description = "orch agent: receive runs from the stack's work queues, launch and stop flow runs on its cluster"
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = concat(local.agent_statements, local.statements.ecs_dispatch)
  })
}
