# Inputs other than the defaults, and inputs the module must refuse (mock provider).

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


run "rds_instance_without_proxy" {
  variables {
    database_engine  = "rds-instance"
    enable_rds_proxy = false
  }
  assert {
    condition     = length(aws_rds_cluster.this) == 0 && length(aws_db_proxy.this) == 0 && aws_db_instance.this[0].storage_encrypted && aws_db_instance.this[0].manage_master_user_password && !aws_db_instance.this[0].publicly_accessible
    error_message = "One encrypted, private RDS instance with an RDS-managed password, no proxy."
  }
  assert {
    condition     = can(regex("^[0-9]+\\.[0-9]+$", aws_db_instance.this[0].engine_version)) && aws_db_instance.this[0].engine == "postgres"
    error_message = "The RDS engine version is pinned fully."
  }
  assert {
    condition     = aws_lambda_function.this["services"].environment[0].variables["ORCH_DATABASE_HOST"] == aws_db_instance.this[0].address && output.database_secret_arn == aws_db_instance.this[0].master_user_secret[0].secret_arn
    error_message = "Without a proxy the Lambdas connect to the instance directly."
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.database_from_front.referenced_security_group_id == aws_security_group.lambda.id && aws_vpc_security_group_egress_rule.lambda_to_database.referenced_security_group_id == aws_security_group.database.id
    error_message = "Without a proxy the Lambdas reach the database directly."
  }
}

run "several_work_queues_a_prefix_and_a_minimum_capacity" {
  variables {
    name_prefix         = "acme-orch"
    work_queues         = ["default", "gpu"]
    aurora_min_capacity = 0.5
  }
  assert {
    condition     = aws_rds_cluster.this[0].serverlessv2_scaling_configuration[0].min_capacity == 0.5
    error_message = "A minimum capacity above zero is passed through."
  }
  assert {
    condition     = toset([for q in aws_sqs_queue.work : q.name]) == toset(["acme-orch-default", "acme-orch-gpu"]) && toset([for q in aws_sqs_queue.work_dlq : q.name]) == toset(["acme-orch-default-dlq", "acme-orch-gpu-dlq"])
    error_message = "One queue and DLQ per work queue, named after the prefix."
  }
  assert {
    condition     = keys(output.work_queue_urls) == ["default", "gpu"] && aws_lambda_function.this["api"].function_name == "acme-orch-api"
    error_message = "Names follow the prefix."
  }
  assert {
    condition     = jsondecode(aws_sqs_queue_redrive_allow_policy.work_dlq["gpu"].redrive_allow_policy).sourceQueueArns == [aws_sqs_queue.work["gpu"].arn]
    error_message = "Each DLQ accepts messages from its own queue only."
  }
  assert {
    condition     = anytrue([for s in jsondecode(aws_iam_role_policy.lambda["api"].policy).Statement : s.Resource == ["arn:aws:sqs:eu-west-1:123456789012:acme-orch-*"]])
    error_message = "The SQS scope follows the prefix."
  }
}

run "refuses_the_internal_queue_name" {
  command = plan
  variables {
    work_queues = ["default", "ecs-events"]
  }
  expect_failures = [var.work_queues]
}

run "refuses_duplicate_queues" {
  command = plan
  variables {
    work_queues = ["default", "default"]
  }
  expect_failures = [var.work_queues]
}

run "refuses_a_bad_prefix" {
  command = plan
  variables {
    name_prefix = "orch-"
  }
  expect_failures = [var.name_prefix]
}

run "refuses_a_missing_package" {
  command = plan
  variables {
    lambda_zip = "dist/does-not-exist.zip"
  }
  expect_failures = [var.lambda_zip]
}

run "refuses_an_unknown_engine" {
  command = plan
  variables {
    database_engine = "mysql"
  }
  expect_failures = [var.database_engine]
}
