# Least privilege of the Lambda roles, checked on the policy documents Terraform would send to IAM (mock provider).

mock_provider "aws" {
  source = "./tests/mocks"
}

# The mock provider of Terraform 1.11 refuses configurations with ephemeral resources, even unused ones, so the
# provider of the key generator (modules/generated-secret-value) is a real one, configured to make no calls, and
# never used: the runs set generate_bootstrap_key = false. tests/infra/test_terraform.py applies that module on
# its own against moto.
provider "aws" {
  alias                       = "secrets"
  region                      = "eu-west-1"
  access_key                  = "mock"
  secret_key                  = "mock"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

variables {
  lambda_zip             = "tests/fixtures/test-package.zip"
  generate_bootstrap_key = false
}


# One run: each run applies the whole stack to the mock provider again, which costs seconds.
run "least_privilege" {
  # --- lambda policies are least privilege ---
  assert {
    condition = alltrue(flatten([
      for p in aws_iam_role_policy.lambda : [
        for s in jsondecode(p.policy).Statement : [for a in s.Action : s.Effect == "Allow" && !strcontains(a, "*")]
      ]
    ]))
    error_message = "No Lambda policy allows a wildcard action."
  }
  assert {
    condition = alltrue(flatten([
      for p in aws_iam_role_policy.lambda : [
        for s in jsondecode(p.policy).Statement : s.Resource != ["*"] if length([for a in s.Action : a if startswith(a, "sqs:") || startswith(a, "s3:") || startswith(a, "secretsmanager:") || a == "iam:PassRole" || a == "ecs:RunTask" || a == "ecs:StopTask" || a == "scheduler:CreateSchedule"]) > 0
      ]
    ]))
    error_message = "Actions IAM can scope to a resource never get Resource = *."
  }
  assert {
    condition = alltrue(flatten([
      for p in aws_iam_role_policy.lambda : [
        for s in jsondecode(p.policy).Statement : s.Resource == ["*"] ? alltrue([for a in s.Action : contains([
          "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface",
          "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses", "scheduler:ListSchedules",
          "ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions",
        ], a)]) : true
      ]
    ]))
    error_message = "Resource = * only for actions that have no resource-level permissions."
  }
  assert {
    condition = alltrue(flatten([
      for p in aws_iam_role_policy.lambda : [
        for s in jsondecode(p.policy).Statement : s.Resource == ["arn:aws:sqs:eu-west-1:123456789012:orch-*"] if anytrue([for a in s.Action : a == "sqs:SendMessage"])
      ]
    ]))
    error_message = "Sending to SQS is limited to the stack's queues (<prefix>-*)."
  }
  assert {
    condition = alltrue(flatten([
      for p in aws_iam_role_policy.lambda : [
        for s in jsondecode(p.policy).Statement : alltrue([for r in s.Resource : contains([aws_s3_bucket.code.arn, aws_s3_bucket.results.arn, "${aws_s3_bucket.code.arn}/bundles/*", "${aws_s3_bucket.results.arn}/results/*"], r)]) if anytrue([for a in s.Action : startswith(a, "s3:")])
      ]
    ]))
    error_message = "S3 access is limited to the two buckets (and their orch prefixes)."
  }
  assert {
    condition = alltrue(flatten([
      for p in aws_iam_role_policy.lambda : [
        for s in jsondecode(p.policy).Statement : alltrue([for r in s.Resource : contains([output.database_secret_arn, output.bootstrap_key_secret_arn], r)]) if anytrue([for a in s.Action : startswith(a, "secretsmanager:")])
      ]
    ]))
    error_message = "Secrets Manager access is limited to the database secret and the bootstrap key."
  }
  assert {
    condition = alltrue(flatten([
      for p in aws_iam_role_policy.lambda : [
        for s in jsondecode(p.policy).Statement : alltrue([for r in s.Resource : contains([aws_iam_role.scheduler.arn, aws_iam_role.ecs_task.arn, aws_iam_role.ecs_execution.arn], r)]) && can(s.Condition.StringEquals["iam:PassedToService"]) if contains(s.Action, "iam:PassRole")
      ]
    ]))
    error_message = "PassRole names the scheduler and task roles only, each for its own service."
  }
  assert {
    condition = alltrue(flatten([
      for p in aws_iam_role_policy.lambda : [
        for s in jsondecode(p.policy).Statement : s.Resource == ["arn:aws:scheduler:eu-west-1:123456789012:schedule/orch/*"] if contains(s.Action, "scheduler:CreateSchedule")
      ]
    ]))
    error_message = "Schedules can be managed in the stack's group only."
  }
  assert {
    condition = alltrue(flatten([
      for p in aws_iam_role_policy.lambda : [
        for s in jsondecode(p.policy).Statement : s.Condition.ArnEquals["ecs:cluster"] == aws_ecs_cluster.this.arn if length(setintersection(s.Action, ["ecs:RunTask", "ecs:StopTask", "ecs:DescribeTasks"])) > 0
      ]
    ]))
    error_message = "ECS run, stop and describe are conditioned on the stack's cluster."
  }
  assert {
    condition = (
      !anytrue([for s in jsondecode(aws_iam_role_policy.lambda["ecs_events"].policy).Statement : contains(s.Action, "ecs:RunTask") || contains(s.Action, "sqs:SendMessage") || contains(s.Action, "scheduler:CreateSchedule") || contains(s.Action, "s3:GetObject")])
      && !anytrue([for s in jsondecode(aws_iam_role_policy.lambda["schedule"].policy).Statement : contains(s.Action, "scheduler:CreateSchedule") || contains(s.Action, "s3:PutObject") || contains(s.Action, "ecs:RunTask") || contains(s.Action, "sqs:CreateQueue")])
      && !anytrue([for s in jsondecode(aws_iam_role_policy.lambda["services"].policy).Statement : contains(s.Action, "sqs:CreateQueue") || contains(s.Action, "sqs:DeleteQueue")])
      && anytrue([for s in jsondecode(aws_iam_role_policy.lambda["ecs_events"].policy).Statement : contains(s.Action, "sqs:ReceiveMessage") && s.Resource == [aws_sqs_queue.ecs_events.arn]])
      && anytrue([for s in jsondecode(aws_iam_role_policy.lambda["api"].policy).Statement : contains(s.Action, "sqs:CreateQueue") && s.Resource == ["arn:aws:sqs:eu-west-1:123456789012:orch-*"]])
    )
    error_message = "Each function gets only what it needs: only the API creates queues, only ecs_events consumes its queue, schedule manages no schedules."
  }
  assert {
    condition = alltrue([
      for k, p in aws_iam_role_policy.lambda :
      [for s in jsondecode(p.policy).Statement : s.Resource if s.Sid == "ReadBootstrapKey"] == [[output.bootstrap_key_secret_arn]]
    ])
    error_message = "Every handler installs the bootstrap key on its first database use, so every role reads that secret."
  }
  assert {
    condition = alltrue([
      for k, p in aws_iam_role_policy.lambda :
      [for s in jsondecode(p.policy).Statement : s.Resource if s.Sid == "WriteOwnLogs"] == [["${aws_cloudwatch_log_group.lambda[k].arn}:*"]]
    ])
    error_message = "Each function writes to its own log group only."
  }

  # --- scheduler role invokes the schedule function only ---
  assert {
    condition     = jsondecode(aws_iam_role_policy.scheduler.policy).Statement[0].Action == ["lambda:InvokeFunction"] && jsondecode(aws_iam_role_policy.scheduler.policy).Statement[0].Resource == ["arn:aws:lambda:eu-west-1:123456789012:function:orch-schedule", "arn:aws:lambda:eu-west-1:123456789012:function:orch-schedule:*"] && length(jsondecode(aws_iam_role_policy.scheduler.policy).Statement) == 1
    error_message = "The scheduler role may invoke the schedule Lambda and nothing else."
  }
  assert {
    condition     = jsondecode(aws_iam_role.scheduler.assume_role_policy).Statement[0].Principal.Service == "scheduler.amazonaws.com" && jsondecode(aws_iam_role.scheduler.assume_role_policy).Statement[0].Condition.ArnEquals["aws:SourceArn"] == aws_scheduler_schedule_group.this.arn
    error_message = "Only EventBridge Scheduler, for schedules of the stack's group, assumes the role."
  }

  # --- task roles ---
  assert {
    condition     = jsondecode(aws_iam_role.ecs_task.assume_role_policy).Statement[0].Principal.Service == "ecs-tasks.amazonaws.com" && jsondecode(aws_iam_role.ecs_execution.assume_role_policy).Statement[0].Principal.Service == "ecs-tasks.amazonaws.com"
    error_message = "ECS tasks assume the task and execution roles."
  }
  assert {
    condition     = alltrue([for s in jsondecode(aws_iam_role_policy.ecs_task.policy).Statement : alltrue([for r in s.Resource : contains([aws_s3_bucket.code.arn, aws_s3_bucket.results.arn, "${aws_s3_bucket.code.arn}/bundles/*", "${aws_s3_bucket.results.arn}/results/*"], r)])])
    error_message = "Flow runs read bundles and read/write results, nothing else."
  }
  assert {
    condition     = contains([for s in jsondecode(aws_iam_role_policy.ecs_execution.policy).Statement : s.Resource if s.Sid == "WriteFlowRunLogs"], ["${aws_cloudwatch_log_group.tasks.arn}:*"])
    error_message = "Task logs go to the stack's log group."
  }
  assert {
    condition     = [for s in jsondecode(aws_iam_role_policy.ecs_execution.policy).Statement : s.Resource if contains(s.Action, "secretsmanager:GetSecretValue")] == [[output.flow_run_api_key_secret_arn]]
    error_message = "ECS reads the flow-run API key secret and no other."
  }
  assert {
    condition = alltrue(flatten([
      for p in aws_iam_role_policy.lambda : [
        for s in jsondecode(p.policy).Statement : s.Condition.StringEquals["ecs:CreateAction"] != null if contains(s.Action, "ecs:TagResource")
      ]
    ]))
    error_message = "ECS resources may be tagged only while they are created."
  }

  # --- agent policy ---
  assert {
    condition = alltrue(flatten([
      for s in jsondecode(aws_iam_policy.agent.policy).Statement : [for a in s.Action : !strcontains(a, "*")]
    ]))
    error_message = "The agent policy allows no wildcard action."
  }
  assert {
    condition     = contains([for s in jsondecode(aws_iam_policy.agent.policy).Statement : s.Resource if contains(s.Action, "sqs:DeleteMessage")], ["arn:aws:sqs:eu-west-1:123456789012:orch-*"]) && output.agent_policy_arn == aws_iam_policy.agent.arn
    error_message = "Agents receive and delete run messages of the stack's queues only."
  }
}
