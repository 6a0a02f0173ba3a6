# How the root composition calls the global namespace; tfdeploy normally
# supplies these values. Provider configuration comes from the environment
# (AWS_REGION, AWS_PROFILE); the repository has no provider block.
terraform {
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40.0, < 6.0.0"
    }
  }
}

module "global" {
  source = "../.."

  name             = "example-dev"
  expected_region  = "us-east-1"
  expected_account = "111111111111"

  workload_trusted_services = ["ecs-tasks.amazonaws.com"]
}

output "workload_role_arn" {
  description = "ARN of the example workload role."
  value       = module.global.workload_role_arn
}
