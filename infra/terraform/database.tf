# PostgreSQL for the control plane. Aurora Serverless v2 by default: with min_capacity = 0 it pauses after
# seconds_until_auto_pause without connections and bills no compute while paused (the first connection then waits
# ~15 s for it to resume). database_engine = "rds-instance" uses one small RDS instance instead.
#
# The master password is generated and rotated by RDS itself (manage_master_user_password) in a Secrets Manager
# secret that holds {"username", "password"}; the host and database name come to the Lambdas in their environment.

locals {
  aurora = var.database_engine == "aurora-serverless"
}

resource "aws_db_subnet_group" "this" {
  name        = local.prefix
  description = "orch database: isolated subnets"
  subnet_ids  = aws_subnet.isolated[*].id
}

resource "aws_rds_cluster" "this" {
  count = local.aurora ? 1 : 0

  cluster_identifier = local.prefix
  engine             = "aurora-postgresql"
  engine_mode        = "provisioned" # Serverless v2 is "provisioned" with db.serverless instances
  engine_version     = var.aurora_engine_version
  database_name      = var.database_name
  master_username    = "orch_admin"

  manage_master_user_password = true
  storage_encrypted           = true

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.database.id]

  serverlessv2_scaling_configuration {
    min_capacity             = var.aurora_min_capacity
    max_capacity             = var.aurora_max_capacity
    seconds_until_auto_pause = var.aurora_min_capacity == 0 ? var.aurora_seconds_until_auto_pause : null
  }

  backup_retention_period   = var.database_backup_retention_days
  copy_tags_to_snapshot     = true
  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = var.skip_final_snapshot
  final_snapshot_identifier = var.skip_final_snapshot ? null : "${local.prefix}-final"
}

resource "aws_rds_cluster_instance" "this" {
  count = local.aurora ? 1 : 0

  identifier           = "${local.prefix}-1"
  cluster_identifier   = aws_rds_cluster.this[0].id
  engine               = aws_rds_cluster.this[0].engine
  engine_version       = aws_rds_cluster.this[0].engine_version
  instance_class       = "db.serverless"
  db_subnet_group_name = aws_db_subnet_group.this.name
  publicly_accessible  = false
}

resource "aws_db_instance" "this" {
  count = local.aurora ? 0 : 1

  identifier     = local.prefix
  engine         = "postgres"
  engine_version = var.rds_engine_version
  instance_class = var.rds_instance_class
  db_name        = var.database_name
  username       = "orch_admin"

  manage_master_user_password = true
  storage_encrypted           = true
  allocated_storage           = var.rds_allocated_storage
  storage_type                = "gp3"

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.database.id]
  publicly_accessible    = false
  multi_az               = false

  auto_minor_version_upgrade = false # the version is pinned; upgrades are a deliberate change of rds_engine_version
  backup_retention_period    = var.database_backup_retention_days
  copy_tags_to_snapshot      = true
  deletion_protection        = var.deletion_protection
  skip_final_snapshot        = var.skip_final_snapshot
  final_snapshot_identifier  = var.skip_final_snapshot ? null : "${local.prefix}-final"
}

locals {
  database_secret_arn = (
    local.aurora
    ? aws_rds_cluster.this[0].master_user_secret[0].secret_arn
    : aws_db_instance.this[0].master_user_secret[0].secret_arn
  )
  database_endpoint = local.aurora ? aws_rds_cluster.this[0].endpoint : aws_db_instance.this[0].address
  database_host     = var.enable_rds_proxy ? aws_db_proxy.this[0].endpoint : local.database_endpoint
}

# --- RDS Proxy ------------------------------------------------------------------------------------------------
# Lambdas open a connection per invocation (ORCH_DATABASE_POOL=null); the proxy pools them onto a few database
# connections and keeps clients waiting (instead of failing) while the database fails over or resumes.

resource "aws_iam_role" "proxy" {
  count = var.enable_rds_proxy ? 1 : 0

  name = "${local.prefix}-rds-proxy"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account } }
    }]
  })
}

resource "aws_iam_role_policy" "proxy" {
  count = var.enable_rds_proxy ? 1 : 0

  name = "read-database-secret"
  role = aws_iam_role.proxy[0].name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "ReadDatabaseSecret"
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
      Resource = [local.database_secret_arn]
    }]
  })
}

resource "aws_db_proxy" "this" {
  count = var.enable_rds_proxy ? 1 : 0

  name                   = local.prefix
  engine_family          = "POSTGRESQL"
  role_arn               = aws_iam_role.proxy[0].arn
  vpc_subnet_ids         = aws_subnet.isolated[*].id
  vpc_security_group_ids = [aws_security_group.proxy[0].id]
  require_tls            = true
  idle_client_timeout    = 1800

  auth {
    auth_scheme               = "SECRETS"
    secret_arn                = local.database_secret_arn
    iam_auth                  = "DISABLED"
    client_password_auth_type = "POSTGRES_SCRAM_SHA_256"
  }

  depends_on = [aws_iam_role_policy.proxy]
}

resource "aws_db_proxy_default_target_group" "this" {
  count = var.enable_rds_proxy ? 1 : 0

  db_proxy_name = aws_db_proxy.this[0].name

  connection_pool_config {
    max_connections_percent      = 90
    max_idle_connections_percent = 10
    connection_borrow_timeout    = 120 # long enough for a paused Aurora cluster to resume
  }
}

resource "aws_db_proxy_target" "this" {
  count = var.enable_rds_proxy ? 1 : 0

  db_proxy_name          = aws_db_proxy.this[0].name
  target_group_name      = aws_db_proxy_default_target_group.this[0].name
  db_cluster_identifier  = local.aurora ? aws_rds_cluster.this[0].cluster_identifier : null
  db_instance_identifier = local.aurora ? null : aws_db_instance.this[0].identifier

  # The proxy can only register a target whose instance exists.
  depends_on = [aws_rds_cluster_instance.this]
}
