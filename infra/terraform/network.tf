# A VPC without NAT gateways (a NAT costs ~$32/month before traffic):
# - public subnets (route to an internet gateway) for Fargate tasks, launched with a public IP so they reach the
#   API's Function URL, S3, ECR and whatever the user's flows call;
# - isolated subnets (no route out at all) for the database, the RDS Proxy and the Lambdas, which reach AWS APIs
#   through VPC endpoints only.

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true # private DNS of interface endpoints needs both

  tags = { Name = local.prefix }
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = local.prefix }
}

resource "aws_subnet" "public" {
  count = var.az_count

  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, count.index)
  # Tasks get a public IP from their launch request (assignPublicIp), not from every interface in the subnet.
  map_public_ip_on_launch = false

  tags = { Name = "${local.prefix}-public-${local.azs[count.index]}" }
}

resource "aws_subnet" "isolated" {
  count = var.az_count

  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, count.index + 8)

  tags = { Name = "${local.prefix}-isolated-${local.azs[count.index]}" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${local.prefix}-public" }
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count = var.az_count

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

# No routes besides the VPC's own and the S3 gateway endpoint's.
resource "aws_route_table" "isolated" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${local.prefix}-isolated" }
}

resource "aws_route_table_association" "isolated" {
  count = var.az_count

  subnet_id      = aws_subnet.isolated[count.index].id
  route_table_id = aws_route_table.isolated.id
}

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.isolated.id, aws_route_table.public.id]

  tags = { Name = "${local.prefix}-s3" }
}

resource "aws_vpc_endpoint" "interface" {
  for_each = toset(var.interface_endpoints)

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.${each.value}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = slice(aws_subnet.isolated[*].id, 0, min(var.interface_endpoint_az_count, var.az_count))
  security_group_ids  = [aws_security_group.endpoints.id]

  tags = { Name = "${local.prefix}-${each.value}" }
}

# --- security groups: each names exactly who may talk to whom ------------------------------------------------

resource "aws_security_group" "lambda" {
  name        = "${local.prefix}-lambda"
  description = "orch control plane Lambdas: out to the database and the VPC endpoints only"
  vpc_id      = aws_vpc.this.id
}

resource "aws_security_group" "database" {
  name        = "${local.prefix}-database"
  description = "orch PostgreSQL: in from the RDS Proxy (or the Lambdas when there is no proxy)"
  vpc_id      = aws_vpc.this.id
}

resource "aws_security_group" "proxy" {
  count = var.enable_rds_proxy ? 1 : 0

  name        = "${local.prefix}-rds-proxy"
  description = "orch RDS Proxy: in from the Lambdas, out to the database"
  vpc_id      = aws_vpc.this.id
}

resource "aws_security_group" "endpoints" {
  name        = "${local.prefix}-endpoints"
  description = "orch interface VPC endpoints: HTTPS in from the Lambdas"
  vpc_id      = aws_vpc.this.id
}

resource "aws_security_group" "tasks" {
  name        = "${local.prefix}-tasks"
  description = "orch flow-run tasks on Fargate: no inbound, any outbound (flows call what they need)"
  vpc_id      = aws_vpc.this.id
}

locals {
  # Where the Lambdas send PostgreSQL traffic: the proxy when there is one, else the database itself.
  database_front_sg = var.enable_rds_proxy ? aws_security_group.proxy[0].id : aws_security_group.database.id
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_database" {
  security_group_id            = aws_security_group.lambda.id
  description                  = "PostgreSQL"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = local.database_front_sg
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_endpoints" {
  security_group_id            = aws_security_group.lambda.id
  description                  = "AWS APIs through interface endpoints"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints.id
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_s3" {
  security_group_id = aws_security_group.lambda.id
  description       = "S3 through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = aws_vpc_endpoint.s3.prefix_list_id
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_lambda" {
  security_group_id            = aws_security_group.endpoints.id
  description                  = "HTTPS from the Lambdas"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.lambda.id
}

resource "aws_vpc_security_group_ingress_rule" "proxy_from_lambda" {
  count = var.enable_rds_proxy ? 1 : 0

  security_group_id            = aws_security_group.proxy[0].id
  description                  = "PostgreSQL from the Lambdas"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.lambda.id
}

resource "aws_vpc_security_group_egress_rule" "proxy_to_database" {
  count = var.enable_rds_proxy ? 1 : 0

  security_group_id            = aws_security_group.proxy[0].id
  description                  = "PostgreSQL to the database"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.database.id
}

resource "aws_vpc_security_group_ingress_rule" "database_from_front" {
  security_group_id            = aws_security_group.database.id
  description                  = var.enable_rds_proxy ? "PostgreSQL from the RDS Proxy" : "PostgreSQL from the Lambdas"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = var.enable_rds_proxy ? aws_security_group.proxy[0].id : aws_security_group.lambda.id
}

resource "aws_vpc_security_group_egress_rule" "tasks_out" {
  security_group_id = aws_security_group.tasks.id
  description       = "Any outbound: the API, S3, ECR, and whatever the flows call"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}
