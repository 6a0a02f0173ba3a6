# Provider configuration comes from the environment (AWS_REGION, AWS_PROFILE);
# this repository never declares a provider "aws" block.
terraform {
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40.0, < 6.0.0"
    }
  }
}

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  log_group_prefix = "/example/app"
}

# One key for every log group below /example/app; CloudWatch Logs may not use
# it for any other log group.
module "logs_key" {
  source = "../.."

  description            = "Log groups of the example application"
  alias_name             = "example-app-logs"
  log_group_arn_patterns = ["arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:${local.log_group_prefix}/*"]

  tags = { DataClassification = "internal" }
}

resource "aws_cloudwatch_log_group" "app" {
  name              = "${local.log_group_prefix}/web"
  retention_in_days = 365
  kms_key_id        = module.logs_key.arn
}

output "key_arn" {
  description = "ARN of the example key."
  value       = module.logs_key.arn
}
