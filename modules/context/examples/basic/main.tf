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

module "context" {
  source = "../.."

  expected_region  = "eu-central-1"
  expected_account = "111111111111"
  allowed_regions  = ["us-east-1", "eu-central-1"]
}

output "verified_region" {
  description = "Region confirmed by the provider."
  value       = module.context.region
}
