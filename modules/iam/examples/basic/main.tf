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

data "aws_caller_identity" "current" {}

module "workload_role" {
  source = "../.."

  name             = "example-dev"
  trusted_services = ["ecs-tasks.amazonaws.com"]

  # Organisations that delegate IAM to teams usually mandate a boundary.
  permissions_boundary_arn = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:policy/WorkloadBoundary"
}

output "role_arn" {
  description = "ARN of the example workload role."
  value       = module.workload_role.role_arn
}
