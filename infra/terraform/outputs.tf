# The names are a contract: `orch stack outputs` reads them, and the CDK stack (infra/cdk) exports the same.

output "api_url" {
  description = "URL of the orch API (the api Lambda's Function URL): set ORCH_API_URL to it."
  value       = aws_lambda_function_url.api.function_url
}

output "code_bucket" {
  description = "S3 bucket of code bundles (under bundles/) and the Lambda package (under lambda/)."
  value       = aws_s3_bucket.code.bucket
}

output "results_bucket" {
  description = "S3 bucket of persisted results (under results/)."
  value       = aws_s3_bucket.results.bucket
}

output "cluster_arn" {
  description = "ARN of the ECS cluster flow runs are launched on."
  value       = aws_ecs_cluster.this.arn
}

output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "subnets" {
  description = "Public subnets for Fargate tasks (launch them with assignPublicIp = ENABLED: there is no NAT)."
  value       = aws_subnet.public[*].id
}

output "security_group" {
  description = "Security group for Fargate tasks (no inbound, any outbound)."
  value       = aws_security_group.tasks.id
}

output "scheduler_group" {
  description = "EventBridge Scheduler schedule group of the deployments' schedules."
  value       = aws_scheduler_schedule_group.this.name
}

output "database_secret_arn" {
  description = "Secrets Manager secret with the database's master credentials (managed and rotated by RDS)."
  value       = local.database_secret_arn
}

output "bootstrap_key_secret_arn" {
  description = "Secrets Manager secret holding the bootstrap admin API key."
  value       = aws_secretsmanager_secret.bootstrap_key.arn
}

output "ecs_task_role_arn" {
  description = "IAM role flow-run tasks run as."
  value       = aws_iam_role.ecs_task.arn
}

output "ecs_execution_role_arn" {
  description = "IAM role ECS uses to pull images and write logs for flow-run tasks."
  value       = aws_iam_role.ecs_execution.arn
}

output "ecs_log_group" {
  description = "CloudWatch log group of flow-run tasks."
  value       = aws_cloudwatch_log_group.tasks.name
}

output "work_queue_urls" {
  description = "SQS queue URL of each work queue, by work-queue name (agents: `orch agent start --work-queue NAME --sqs`)."
  value       = { for name, queue in aws_sqs_queue.work : name => queue.id }
}

output "agent_policy_arn" {
  description = "Managed IAM policy to attach to the role or user an orch agent runs as."
  value       = aws_iam_policy.agent.arn
}

output "function_names" {
  description = "Names of the four control plane functions, by role (api, schedule, services, ecs_events)."
  value       = { for key, function in aws_lambda_function.this : key => function.function_name }
}

output "assign_public_ip" {
  description = "Whether flow-run tasks need a public IP (ORCH_ECS_ASSIGN_PUBLIC_IP): always, the subnets have no NAT."
  value       = true
}

output "sqs_queue_prefix" {
  description = "Prefix of the work queues' SQS queue names (ORCH_SQS_QUEUE_PREFIX)."
  value       = local.queue_prefix
}

output "flow_run_api_key_secret_arn" {
  description = "Secret for the API key flow-run tasks report with (ORCH_ECS_API_KEY_SECRET_ARN); you put the value."
  value       = aws_secretsmanager_secret.flow_run_api_key.arn
}
