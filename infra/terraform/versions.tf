terraform {
  # 1.11: write-only attributes keep the generated bootstrap key out of the state and the plan.
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.100: ephemeral aws_secretsmanager_random_password, secret_string_wo, Aurora min_capacity = 0.
      version = ">= 5.100, < 6.0"
    }
  }
}

provider "aws" {
  # null: the region comes from AWS_REGION / the profile, as for any AWS tool.
  region = var.region

  default_tags {
    tags = merge({ "orch:stack" = var.name_prefix }, var.tags)
  }
}

# The same account and region, for the generator of the bootstrap key only: a provider of its own so that
# `terraform test` can mock every other resource (its mock provider cannot handle ephemeral resources).
provider "aws" {
  alias  = "secrets"
  region = var.region

  default_tags {
    tags = merge({ "orch:stack" = var.name_prefix }, var.tags)
  }
}
