# The bootstrap admin API key: the first credential of a new control plane (orch's API requires a key on every
# request, ORCH_AUTH=on). By default Secrets Manager generates the value and Terraform stores it without keeping
# it: it is in neither the plan nor the state (modules/generated-secret-value). Read it with
#   aws secretsmanager get-secret-value --secret-id "$(terraform output -raw bootstrap_key_secret_arn)" \
#     --query SecretString --output text
# Increase bootstrap_key_version and apply to store a new value; with generate_bootstrap_key = false the secret is
# created empty and you put your own value into it before the first request.

resource "aws_secretsmanager_secret" "bootstrap_key" {
  name                    = "${local.prefix}/bootstrap-admin-key"
  description             = "orch bootstrap admin API key (read it once, create personal keys, then rotate it)"
  recovery_window_in_days = var.secret_recovery_window_days
}

module "bootstrap_key_value" {
  source = "./modules/generated-secret-value"
  count  = var.generate_bootstrap_key ? 1 : 0

  providers = {
    aws = aws.secrets
  }

  secret_id     = aws_secretsmanager_secret.bootstrap_key.id
  value_version = var.bootstrap_key_version
}

# The API key flow-run tasks use to report to the API. ECS injects it into the container (ORCH_API_KEY) from this
# secret, so it never appears in a task definition: create a key for the agents' runs (`orch api-key create`) and
# put it here (`aws secretsmanager put-secret-value --secret-id <flow_run_api_key_secret_arn> --secret-string ...`);
# agents name the secret with ORCH_ECS_API_KEY_SECRET_ARN.
resource "aws_secretsmanager_secret" "flow_run_api_key" {
  name                    = "${local.prefix}/flow-run-api-key"
  description             = "orch API key that flow-run tasks on ECS report with (you put the value)"
  recovery_window_in_days = var.secret_recovery_window_days
}
