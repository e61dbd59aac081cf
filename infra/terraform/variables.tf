variable "lambda_zip" {
  description = "Path to the control plane's Lambda package, built by `orch build lambda` (dist/orch-lambda.zip)."
  type        = string

  validation {
    condition     = fileexists(var.lambda_zip)
    error_message = "lambda_zip does not name a file: build it first with `orch build lambda --out dist/`."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (queues, functions, buckets, roles); one stack per prefix per region."
  type        = string
  default     = "orch"

  validation {
    # Lower case because bucket names are; short because it prefixes IAM role (64) and queue (80) names; no
    # leading, trailing or doubled '-' because RDS identifiers refuse them.
    condition     = length(var.name_prefix) <= 20 && can(regex("^[a-z][a-z0-9]*(-[a-z0-9]+)*$", var.name_prefix))
    error_message = "name_prefix must be 1-20 lower-case letters, digits and single '-' between them, starting with a letter."
  }
}

variable "region" {
  description = "AWS region to deploy to; null uses AWS_REGION or the profile's region."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource (besides orch:stack = name_prefix)."
  type        = map(string)
  default     = {}
}

# --- network -------------------------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the VPC; split into /20 public and isolated subnets, one each per availability zone."
  type        = string
  default     = "10.80.0.0/16"

  validation {
    condition     = can(cidrsubnet(var.vpc_cidr, 4, 15))
    error_message = "vpc_cidr must be an IPv4 CIDR block of /16 or larger (it is split into /20 subnets)."
  }
}

variable "az_count" {
  description = "Number of availability zones (the database subnet group needs at least 2)."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 4
    error_message = "az_count must be between 2 and 4."
  }
}

variable "interface_endpoints" {
  description = <<-EOT
    AWS services the Lambdas reach through interface VPC endpoints. The Lambdas run in isolated subnets (no NAT), so
    every AWS API they call needs an endpoint: Secrets Manager (database credentials), SQS (run queue), EventBridge
    Scheduler (deployment schedules) and ECS (launching flow runs). S3 uses a free gateway endpoint.
  EOT
  type        = list(string)
  default     = ["secretsmanager", "sqs", "scheduler", "ecs"]
}

variable "interface_endpoint_az_count" {
  description = <<-EOT
    In how many availability zones each interface endpoint gets a network interface. Each costs about $7/month;
    1 (the default) is reachable from every zone, 2 or more keeps working when that one zone fails.
  EOT
  type        = number
  default     = 1

  validation {
    condition     = var.interface_endpoint_az_count >= 1
    error_message = "interface_endpoint_az_count must be at least 1."
  }
}

# --- database ------------------------------------------------------------------------------------------------

variable "database_engine" {
  description = "\"aurora-serverless\" (Aurora Serverless v2 PostgreSQL, scales to zero) or \"rds-instance\" (one small RDS PostgreSQL instance)."
  type        = string
  default     = "aurora-serverless"

  validation {
    condition     = contains(["aurora-serverless", "rds-instance"], var.database_engine)
    error_message = "database_engine must be \"aurora-serverless\" or \"rds-instance\"."
  }
}

variable "database_name" {
  description = "Name of the PostgreSQL database orch uses."
  type        = string
  default     = "orch"
}

variable "aurora_engine_version" {
  description = "Aurora PostgreSQL version, pinned fully (auto-pause to 0 ACU needs 13.15, 14.12, 15.7, 16.3 or later)."
  type        = string
  default     = "16.6"
}

variable "aurora_min_capacity" {
  description = "Minimum Aurora capacity in ACU; 0 lets the database pause when idle (nothing is billed for compute then)."
  type        = number
  default     = 0
}

variable "aurora_max_capacity" {
  description = "Maximum Aurora capacity in ACU."
  type        = number
  default     = 4
}

variable "aurora_seconds_until_auto_pause" {
  description = "Idle seconds before Aurora pauses (300-86400); used when aurora_min_capacity is 0."
  type        = number
  default     = 300

  validation {
    condition     = var.aurora_seconds_until_auto_pause >= 300 && var.aurora_seconds_until_auto_pause <= 86400
    error_message = "aurora_seconds_until_auto_pause must be between 300 and 86400."
  }
}

variable "rds_engine_version" {
  description = "RDS PostgreSQL version for database_engine = \"rds-instance\", pinned fully."
  type        = string
  default     = "16.8"
}

variable "rds_instance_class" {
  description = "Instance class for database_engine = \"rds-instance\"."
  type        = string
  default     = "db.t4g.micro"
}

variable "rds_allocated_storage" {
  description = "Storage in GiB for database_engine = \"rds-instance\"."
  type        = number
  default     = 20
}

variable "enable_rds_proxy" {
  description = "Put an RDS Proxy between the Lambdas and the database (connection pooling, faster failover)."
  type        = bool
  default     = true
}

variable "database_backup_retention_days" {
  description = "Days of automated database backups."
  type        = number
  default     = 7
}

variable "deletion_protection" {
  description = "Protect the database from deletion; set false (and apply) before `terraform destroy`."
  type        = bool
  default     = true
}

variable "skip_final_snapshot" {
  description = "Delete the database without a final snapshot on destroy."
  type        = bool
  default     = false
}

# --- Lambda, queues, storage, logs ---------------------------------------------------------------------------

variable "lambda_memory_mb" {
  description = "Memory of each Lambda function in MB (CPU grows with it)."
  type        = number
  default     = 1024
}

variable "services_schedule" {
  description = <<-EOT
    How often EventBridge runs the services Lambda (late runs, zombies, cancellation, retention). Each tick connects
    to the database, so with rate(1 minute) an Aurora cluster never reaches its auto-pause idle time.
  EOT
  type        = string
  default     = "rate(1 minute)"
}

variable "work_queues" {
  description = "orch work queues; each gets an SQS queue <prefix>-<name> and a dead-letter queue <prefix>-<name>-dlq."
  type        = list(string)
  default     = ["default"]

  validation {
    # 80 characters is SQS's limit for "<prefix>-<name>-dlq"; "ecs-events" is the stack's own internal queue.
    condition = alltrue([
      for queue in var.work_queues :
      can(regex("^[A-Za-z0-9_-]{1,50}$", queue)) && queue != "ecs-events"
    ]) && length(var.work_queues) == length(distinct(var.work_queues))
    error_message = "work_queues must be distinct names of 1-50 letters, digits, '-' or '_', and not \"ecs-events\"."
  }
}

variable "queue_visibility_timeout_seconds" {
  description = "How long a run message stays invisible after an agent received it (the control plane's ORCH_SQS_VISIBILITY_TIMEOUT default)."
  type        = number
  default     = 60
}

variable "max_receive_count" {
  description = "Receives after which a run message moves to the dead-letter queue (the control plane's ORCH_SQS_MAX_RECEIVES default)."
  type        = number
  default     = 5
}

variable "log_retention_days" {
  description = "Retention of the Lambda and ECS task log groups."
  type        = number
  default     = 30
}

variable "results_expiration_days" {
  description = "Days after which persisted results are deleted from the results bucket; null keeps them."
  type        = number
  default     = null
}

variable "force_destroy_buckets" {
  description = "Let `terraform destroy` delete the buckets with their contents."
  type        = bool
  default     = false
}

variable "container_insights" {
  description = "Enable CloudWatch Container Insights on the ECS cluster (billed per metric)."
  type        = bool
  default     = false
}

variable "secret_recovery_window_days" {
  description = "Days a deleted bootstrap-key secret can be restored (0 deletes at once, allowing a redeploy with the same prefix)."
  type        = number
  default     = 7
}

variable "bootstrap_key_version" {
  description = "Version of the generated bootstrap admin key; increase it and apply to generate a new value."
  type        = number
  default     = 1
}

variable "generate_bootstrap_key" {
  description = "Generate the bootstrap admin key's value; false creates the secret empty for you to fill."
  type        = bool
  default     = true
}
