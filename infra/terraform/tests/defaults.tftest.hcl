# The stack with its default inputs (Aurora Serverless v2, RDS Proxy, one work queue), against a mock AWS provider:
# nothing is created; the assertions check what Terraform would send to AWS.

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
run "defaults" {
  # --- network has no nat ---
  assert {
    condition     = aws_route.public_internet.gateway_id == aws_internet_gateway.this.id && aws_route.public_internet.nat_gateway_id == null
    error_message = "The only route out must go to the internet gateway (public subnets), never a NAT gateway."
  }
  assert {
    condition     = toset(aws_route_table_association.isolated[*].subnet_id) == toset(aws_subnet.isolated[*].id) && alltrue([for a in aws_route_table_association.isolated : a.route_table_id == aws_route_table.isolated.id])
    error_message = "Isolated subnets must use the route table without a route out."
  }
  assert {
    condition     = length(aws_subnet.public) == 2 && length(aws_subnet.isolated) == 2 && aws_subnet.public[0].availability_zone != aws_subnet.public[1].availability_zone
    error_message = "Two availability zones with a public and an isolated subnet each."
  }
  assert {
    condition     = toset(keys(aws_vpc_endpoint.interface)) == toset(["secretsmanager", "sqs", "scheduler", "ecs"]) && aws_vpc_endpoint.s3.vpc_endpoint_type == "Gateway"
    error_message = "The Lambdas need endpoints for every AWS API they call."
  }
  assert {
    condition     = alltrue([for e in aws_vpc_endpoint.interface : e.private_dns_enabled && length(e.subnet_ids) == 1])
    error_message = "Interface endpoints use private DNS, in one zone by default."
  }
  assert {
    condition     = length(aws_lambda_function.this["api"].vpc_config[0].subnet_ids) == 2 && toset(aws_lambda_function.this["api"].vpc_config[0].subnet_ids) == toset(aws_subnet.isolated[*].id)
    error_message = "Lambdas run in the isolated subnets."
  }

  # --- database is aurora serverless encrypted behind proxy ---
  assert {
    condition     = aws_rds_cluster.this[0].engine == "aurora-postgresql" && aws_rds_cluster_instance.this[0].instance_class == "db.serverless"
    error_message = "Default database is Aurora Serverless v2 PostgreSQL."
  }
  assert {
    condition     = aws_rds_cluster.this[0].serverlessv2_scaling_configuration[0].min_capacity == 0 && aws_rds_cluster.this[0].serverlessv2_scaling_configuration[0].seconds_until_auto_pause == 300
    error_message = "Aurora must be able to pause (min 0 ACU, auto-pause after 5 minutes)."
  }
  assert {
    condition     = can(regex("^[0-9]+\\.[0-9]+$", aws_rds_cluster.this[0].engine_version))
    error_message = "The engine version must be pinned fully (major.minor)."
  }
  assert {
    condition     = aws_rds_cluster.this[0].storage_encrypted && aws_rds_cluster.this[0].manage_master_user_password && aws_rds_cluster.this[0].deletion_protection
    error_message = "Encrypted storage, RDS-managed password in Secrets Manager, deletion protection."
  }
  assert {
    condition     = length(aws_db_instance.this) == 0 && length(aws_db_proxy.this) == 1 && aws_db_proxy.this[0].require_tls
    error_message = "One Aurora cluster behind an RDS Proxy that requires TLS."
  }
  assert {
    condition     = one(aws_db_proxy.this[0].auth).secret_arn == output.database_secret_arn && aws_db_proxy_target.this[0].db_cluster_identifier == aws_rds_cluster.this[0].cluster_identifier
    error_message = "The proxy authenticates with the RDS-managed secret and targets the cluster."
  }
  assert {
    condition     = aws_lambda_function.this["api"].environment[0].variables["ORCH_DATABASE_HOST"] == aws_db_proxy.this[0].endpoint
    error_message = "The Lambdas connect through the proxy."
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.database_from_front.referenced_security_group_id == aws_security_group.proxy[0].id && aws_vpc_security_group_ingress_rule.proxy_from_lambda[0].referenced_security_group_id == aws_security_group.lambda.id
    error_message = "Only the proxy reaches the database, only the Lambdas reach the proxy."
  }

  # --- buckets are encrypted private and tls only ---
  assert {
    condition     = aws_s3_bucket_versioning.code.versioning_configuration[0].status == "Enabled"
    error_message = "The code bucket is versioned."
  }
  assert {
    condition     = alltrue([for c in aws_s3_bucket_server_side_encryption_configuration.this : one(one(c.rule).apply_server_side_encryption_by_default).sse_algorithm == "AES256"]) && length(aws_s3_bucket_server_side_encryption_configuration.this) == 2
    error_message = "Both buckets are encrypted."
  }
  assert {
    condition     = alltrue([for b in aws_s3_bucket_public_access_block.this : b.block_public_acls && b.block_public_policy && b.ignore_public_acls && b.restrict_public_buckets]) && length(aws_s3_bucket_public_access_block.this) == 2
    error_message = "Both buckets block every kind of public access."
  }
  assert {
    condition     = alltrue([for o in aws_s3_bucket_ownership_controls.this : one(o.rule).object_ownership == "BucketOwnerEnforced"])
    error_message = "Object ownership is enforced (ACLs off)."
  }
  assert {
    condition = alltrue([
      for name, p in aws_s3_bucket_policy.tls_only :
      anytrue([for s in jsondecode(p.policy).Statement : s.Effect == "Deny" && s.Condition.Bool["aws:SecureTransport"] == "false" if can(s.Condition.Bool)])
    ]) && length(aws_s3_bucket_policy.tls_only) == 2
    error_message = "Both bucket policies deny requests without TLS."
  }
  assert {
    condition     = aws_s3_bucket.code.bucket == "orch-code-123456789012-eu-west-1" && aws_s3_bucket.results.bucket == "orch-results-123456789012-eu-west-1"
    error_message = "Bucket names are unique per account and region."
  }

  # --- queues have dead letter queues ---
  assert {
    condition     = aws_sqs_queue.work["default"].name == "orch-default" && aws_sqs_queue.work_dlq["default"].name == "orch-default-dlq"
    error_message = "Work queue names are <prefix>-<queue> and <prefix>-<queue>-dlq."
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.work["default"].redrive_policy).maxReceiveCount == 5 && jsondecode(aws_sqs_queue.work["default"].redrive_policy).deadLetterTargetArn == aws_sqs_queue.work_dlq["default"].arn
    error_message = "Messages move to the dead-letter queue after 5 receives."
  }
  assert {
    condition     = aws_sqs_queue.work["default"].sqs_managed_sse_enabled && aws_sqs_queue.work_dlq["default"].sqs_managed_sse_enabled && aws_sqs_queue.ecs_events.sqs_managed_sse_enabled && aws_sqs_queue.ecs_events_dlq.sqs_managed_sse_enabled
    error_message = "Every queue is encrypted."
  }
  assert {
    condition     = output.work_queue_urls == { default = aws_sqs_queue.work["default"].id }
    error_message = "work_queue_urls maps each work queue to its URL."
  }

  # --- lambdas share one environment contract ---
  assert {
    condition = alltrue([
      for f in aws_lambda_function.this :
      f.runtime == "python3.12" && f.architectures == tolist(["arm64"]) && f.environment[0].variables == aws_lambda_function.this["api"].environment[0].variables
    ])
    error_message = "All four functions run python3.12 on arm64 with the same environment."
  }
  assert {
    condition = {
      for k, f in aws_lambda_function.this : k => f.handler
      } == {
      api        = "orch.control_plane.lambda_handlers.api_handler"
      schedule   = "orch.control_plane.lambda_handlers.schedule_handler"
      services   = "orch.control_plane.lambda_handlers.services_handler"
      ecs_events = "orch.control_plane.lambda_handlers.ecs_events_handler"
    }
    error_message = "The four handlers."
  }
  assert {
    condition = toset(keys(aws_lambda_function.this["api"].environment[0].variables)) == toset([
      "ORCH_DATABASE_SECRET_ARN", "ORCH_DATABASE_HOST", "ORCH_DATABASE_NAME", "ORCH_DATABASE_POOL", "ORCH_RUN_QUEUE",
      "ORCH_SQS_QUEUE_PREFIX", "ORCH_SCHEDULE_BACKEND", "ORCH_SCHEDULER_GROUP_NAME", "ORCH_SCHEDULER_ROLE_ARN",
      "ORCH_SCHEDULER_TARGET_ARN", "ORCH_STORAGE_URL", "ORCH_RESULTS_STORAGE_URL", "ORCH_ECS_CLUSTER", "ORCH_ECS_SUBNETS",
      "ORCH_ECS_SECURITY_GROUPS", "ORCH_ECS_TASK_ROLE_ARN", "ORCH_ECS_EXECUTION_ROLE_ARN", "ORCH_ECS_LOG_GROUP", "ORCH_AUTH",
      "ORCH_BOOTSTRAP_KEY_SECRET_ARN", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE",
    ])
    error_message = "The environment has exactly the contract's variables."
  }
  assert {
    condition = (
      aws_lambda_function.this["api"].environment[0].variables["ORCH_DATABASE_POOL"] == "null"
      && aws_lambda_function.this["api"].environment[0].variables["ORCH_RUN_QUEUE"] == "sqs"
      && aws_lambda_function.this["api"].environment[0].variables["ORCH_SCHEDULE_BACKEND"] == "eventbridge"
      && aws_lambda_function.this["api"].environment[0].variables["ORCH_AUTH"] == "on"
      && aws_lambda_function.this["api"].environment[0].variables["ORCH_SQS_QUEUE_PREFIX"] == "orch-"
      && aws_lambda_function.this["api"].environment[0].variables["ORCH_STORAGE_URL"] == "s3://orch-code-123456789012-eu-west-1/bundles"
      && aws_lambda_function.this["api"].environment[0].variables["ORCH_RESULTS_STORAGE_URL"] == "s3://orch-results-123456789012-eu-west-1/results"
      && aws_lambda_function.this["api"].environment[0].variables["ORCH_ECS_SUBNETS"] == join(",", aws_subnet.public[*].id)
      && aws_lambda_function.this["api"].environment[0].variables["ORCH_SCHEDULER_TARGET_ARN"] == "arn:aws:lambda:eu-west-1:123456789012:function:orch-schedule"
      && aws_lambda_function.this["api"].environment[0].variables["ORCH_DATABASE_SECRET_ARN"] == output.database_secret_arn
      && aws_lambda_function.this["api"].environment[0].variables["ORCH_BOOTSTRAP_KEY_SECRET_ARN"] == aws_secretsmanager_secret.bootstrap_key.arn
      && aws_lambda_function.this["api"].environment[0].variables["POWERTOOLS_SERVICE_NAME"] == "orch"
    )
    error_message = "Environment values follow the contract."
  }
  assert {
    condition     = aws_lambda_function_url.api.authorization_type == "NONE" && output.api_url == aws_lambda_function_url.api.function_url
    error_message = "The API is public through its Function URL (orch's API keys authenticate requests)."
  }
  assert {
    condition     = jsondecode(aws_cloudformation_stack.api_url_invoke_permission.template_body).Resources.FunctionUrlInvoke.Properties.InvokedViaFunctionUrl == true
    error_message = "The public InvokeFunction permission is limited to calls through the Function URL."
  }
  assert {
    condition     = aws_lambda_function.this["api"].s3_bucket == aws_s3_bucket.code.bucket && aws_lambda_function.this["api"].source_code_hash == filebase64sha256("tests/fixtures/test-package.zip")
    error_message = "The code comes from the uploaded package and changes with it."
  }

  # --- triggers ---
  assert {
    condition     = aws_cloudwatch_event_rule.services.schedule_expression == "rate(1 minute)" && aws_cloudwatch_event_target.services.arn == aws_lambda_function.this["services"].arn
    error_message = "EventBridge runs the services Lambda every minute."
  }
  assert {
    condition     = aws_lambda_permission.services_from_eventbridge.source_arn == aws_cloudwatch_event_rule.services.arn && aws_lambda_permission.services_from_eventbridge.principal == "events.amazonaws.com"
    error_message = "Only the services rule may invoke the services Lambda."
  }
  assert {
    condition = jsondecode(aws_cloudwatch_event_rule.ecs_task_state.event_pattern) == {
      source        = ["aws.ecs"]
      "detail-type" = ["ECS Task State Change"]
      detail        = { clusterArn = [aws_ecs_cluster.this.arn] }
    }
    error_message = "The ECS rule matches task state changes of this cluster only."
  }
  assert {
    condition     = aws_cloudwatch_event_target.ecs_task_state.arn == aws_sqs_queue.ecs_events.arn && aws_lambda_event_source_mapping.ecs_events.event_source_arn == aws_sqs_queue.ecs_events.arn && aws_lambda_event_source_mapping.ecs_events.function_name == aws_lambda_function.this["ecs_events"].arn
    error_message = "ECS task changes flow rule -> SQS -> ecs_events Lambda."
  }
  assert {
    condition     = jsondecode(aws_sqs_queue_policy.ecs_events.policy).Statement[0].Condition.ArnEquals["aws:SourceArn"] == aws_cloudwatch_event_rule.ecs_task_state.arn
    error_message = "Only the ECS task-state rule may send to the ECS events queue."
  }
  assert {
    condition     = aws_sqs_queue.ecs_events.visibility_timeout_seconds >= 6 * aws_lambda_function.this["ecs_events"].timeout
    error_message = "The event queue's visibility timeout covers six consumer timeouts."
  }

  # --- outputs are all set ---
  assert {
    condition = alltrue([for v in [
      output.api_url, output.code_bucket, output.results_bucket, output.cluster_arn, output.cluster_name,
      output.security_group, output.scheduler_group, output.database_secret_arn, output.bootstrap_key_secret_arn,
      output.ecs_task_role_arn, output.ecs_execution_role_arn, output.ecs_log_group,
    ] : v != null && v != ""])
    error_message = "Every output has a value."
  }
  assert {
    condition     = output.subnets == aws_subnet.public[*].id && output.security_group == aws_security_group.tasks.id && output.cluster_name == "orch" && output.scheduler_group == "orch"
    error_message = "Tasks are launched in the public subnets with the tasks security group."
  }
  assert {
    condition     = aws_cloudwatch_log_group.tasks.retention_in_days == 30 && alltrue([for g in aws_cloudwatch_log_group.lambda : g.retention_in_days == 30])
    error_message = "Log groups have a retention."
  }
}
